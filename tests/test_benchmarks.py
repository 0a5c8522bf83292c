"""The benchmark's floor writes the same rows as the build, on each benchmark's inputs."""
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
