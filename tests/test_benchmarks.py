"""The benchmark's floor writes the same rows as the build, on each benchmark's inputs; how
the benchmark turns its measurements into figures."""
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from benchmarks import floor, run
from tests.helpers import run_build


def _rows(table) -> list[tuple]:
    return sorted(zip(*(table[name].to_pylist() for name in
                        ("dataset", "subset", "record_id", "anchor", "positive", "negative", "source_file"))))


@pytest.mark.parametrize("name", sorted(run.BENCHES))
def test_the_floor_writes_the_rows_the_build_writes(name, tmp_path):
    bench = run.BENCHES[name]
    root = tmp_path / "in"
    bench.generate(root, 0.0)  # run.MIN_ITEMS items
    target = tmp_path / "floor.parquet"
    written = getattr(floor, bench.floor_function)(*map(Path, bench.floor_args(root, target)))
    floor_rows = _rows(pq.read_table(target))
    build = run_build(tmp_path / "out", input_root=root, datasets=bench.datasets)
    build_rows = sorted((r["dataset"], r["subset"], r["record_id"], r["anchor"], r["positive"],
                         r["negative"], r["source_file"]) for d in bench.datasets for r in build.rows[d])
    assert written == len(floor_rows) > 0
    assert floor_rows == build_rows


def test_the_floor_is_timed_without_the_import_of_beam(tmp_path):
    bench = run.BENCHES["wikianswers"]
    bench.generate(tmp_path / "in", 0.0)
    measurement = run.run_floor(bench, tmp_path / "in", tmp_path / "floor")
    assert measurement.rows == pq.read_metadata(tmp_path / "floor" / "floor.parquet").num_rows > 0
    # Beam's import (about a second) is measured in the floor's process and left out.
    assert measurement.not_counted_seconds > 0.2
    assert 0 < measurement.seconds
    assert 0 < measurement.cpu_seconds


def test_marginal_rates_are_the_extra_rows_over_the_extra_seconds():
    def m(rows, seconds, cores=1):
        return run.Measurement("", rows, seconds, 0.0, 0, cores)

    results = {"floor 1x": m(100, 1.0), "floor 4x": m(400, 2.5),
               "1 worker 1x": m(100, 3.0), "1 worker 4x": m(400, 6.0)}
    rates = run.marginal_rates(results)
    assert rates["marginal_floor_rows_per_core_second"] == pytest.approx(200.0)
    assert rates["marginal_pipeline_rows_per_core_second"] == pytest.approx(100.0)
    assert rates["marginal_throughput_ratio"] == pytest.approx(0.5)
    assert run.marginal_rates({k: v for k, v in results.items() if k != "floor 1x"}) == {}
    assert run.marginal_rates(results | {"1 worker 4x": m(400, 3.0)}) == {}


def test_stress_checks_each_build_against_its_accounting_and_the_reference_bytes(tmp_path):
    from benchmarks import stress

    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (out / "d" / "d-00000-of-00001.parquet").write_bytes(b"rows")
    accounting = {"records": {"read": 5, "paired": 3, "rejected": 0, "skipped": {"cap": 1}, "holds": False},
                  "rows": {"from_rules": 3, "written": 3, "dropped": 0, "holds": True}}
    (out / "manifest.json").write_text(json.dumps(
        {"datasets": {"d": {"rows": 3, "accounting": accounting}, "e": {"verdict": "no input"}}}))
    reference = stress.output_hashes(out)
    assert stress.check_build(out, reference) == (
        ["d: records read 5 != paired 3 + rejected 0 + skipped 1 (off by +1)"], 3, 1)
    (out / "d" / "d-00000-of-00001.parquet").write_bytes(b"other rows")
    assert "1 file(s) differs: d/d-00000-of-00001.parquet" in stress.check_build(out, reference)[0]
    assert stress.check_build(tmp_path / "nothing", reference)[0] == ["no manifest.json"]
    # The reference reads files whole with one worker; the stressed builds in ranges and blocks.
    one = stress.build_command("msmarco", tmp_path, out, 1, 1.0, 1024)
    two = stress.build_command("msmarco", tmp_path, out, 2, 1.0, 1024)
    assert "--direct_num_workers=1" in one and f"msmarco.split_mb={stress.WHOLE_FILES_MB}" in one
    assert {"--direct_num_workers=2", "msmarco.split_mb=1.0", "--block_bytes=1048576"} <= set(two)
    with pytest.raises(SystemExit):
        stress.main(["--sources", "nosuchsource"])
