"""Partitioned hash joins of Arrow tables (pipelines.core.exchange)."""
from __future__ import annotations

import random

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.testing.util import assert_that, equal_to

from pipelines.core.exchange import (ArrowTableCoder, HashJoin, SpillByHash, hash_range, id_hash,
                                     plan_tasks, read_range)
from pipelines.core.rejects import rejected

LEFT = pa.schema([("id", pa.int64()), ("value", pa.string())])
RIGHT = pa.schema([("key", pa.int64()), ("text", pa.string())])


def test_id_hash_is_fixed_and_spreads_consecutive_ids():
    hashes = id_hash(np.arange(100_000))
    assert id_hash(np.array([0, 1, -1])).tolist() == id_hash(pa.array([0, 1, -1])).tolist()
    assert len(set(hashes.tolist())) == 100_000
    # Consecutive ids fill the 16 hash ranges evenly (within 5%).
    counts = np.bincount((hashes >> np.uint64(60)).astype(np.int64), minlength=16)
    assert counts.min() > 0.95 * 100_000 / 16


def test_hash_ranges_cover_the_space_without_overlap():
    ranges = [hash_range(j, 7) for j in range(7)]
    assert ranges[0][0] == 0 and ranges[-1][1] == 1 << 64
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))


def test_plan_reads_only_overlapping_batches():
    runs = {"left": [{"path": "a", "batches": [[0, 10, 5, 100], [1 << 63, (1 << 64) - 1, 5, 100]]}],
            "right": []}
    tasks = plan_tasks(runs, task_bytes=100)
    assert [t["reads"]["left"] for t in tasks] == [[("a", 0, True)], [("a", 1, True)]]
    assert len(plan_tasks(runs, task_bytes=1 << 30, min_tasks=5)) == 5


def test_spilled_run_reads_back_by_range(tmp_path):
    spill = SpillByHash(str(tmp_path), "id", LEFT, spill_bytes=1 << 30, row_group_bytes=64)
    spill.start_bundle()
    table = pa.table({"id": list(range(500)), "value": [f"v{i}" for i in range(500)]}, schema=LEFT)
    assert list(spill.process(table)) == []
    (run,) = [w.value if hasattr(w, "value") else w for w in spill.finish_bundle()]
    assert len(run["batches"]) > 1 and sum(b[2] for b in run["batches"]) == 500
    tasks = plan_tasks({"left": [run]}, task_bytes=1, min_tasks=3)
    parts = [read_range(t["reads"]["left"], LEFT, t["low"], t["high"]) for t in tasks]
    assert sum(p.num_rows for p in parts) == 500
    assert sorted(v for p in parts for v in p["id"].to_pylist()) == list(range(500))


def test_arrow_coder_round_trip():
    coder = ArrowTableCoder()
    table = pa.table({"id": [1, 2], "value": ["a", None]}, schema=LEFT)
    assert coder.decode(coder.encode(table)).equals(table)
    assert coder.estimate_size(table) == table.nbytes


def _inner_join(tables):
    left, right = tables["left"], tables["right"]
    joined = left.join(right, keys="id", right_keys="key", join_type="left outer", use_threads=False)
    missing = pc.is_null(joined["text"])
    for row in joined.filter(missing).to_pylist():
        yield rejected("d", "missing", source_file="f", record_id=str(row["id"]))
    yield joined.filter(pc.invert(missing))




def test_hash_join_matches_a_dict_join_whatever_the_task_count(tmp_path):
    rng = random.Random(7)
    left_rows = [{"id": rng.randrange(300), "value": f"l{i}"} for i in range(1000)]
    right_rows = [{"key": k, "text": f"t{k}"} for k in rng.sample(range(300), 200)]
    texts = {r["key"]: r["text"] for r in right_rows}
    expected = [(r["id"], r["value"], texts[r["id"]]) for r in left_rows if r["id"] in texts]
    expected_missing = [str(r["id"]) for r in left_rows if r["id"] not in texts]
    for n, (min_tasks, spill_bytes) in enumerate([(1, 1 << 30), (13, 2048)]):
        with beam.Pipeline(runner="FnApiRunner") as pipeline:
            def tables(rows, schema, size, label):
                return pipeline | label >> beam.Create(
                    [pa.Table.from_pylist(rows[i:i + size], schema=schema) for i in range(0, len(rows), size)])
            left = tables(left_rows, LEFT, 37, "L") | "SpillL" >> beam.ParDo(
                SpillByHash(str(tmp_path / f"{n}l"), "id", LEFT, spill_bytes, 256))
            right = tables(right_rows, RIGHT, 11, "R") | "SpillR" >> beam.ParDo(
                SpillByHash(str(tmp_path / f"{n}r"), "key", RIGHT, spill_bytes, 256))
            joined = {"left": left, "right": right} | HashJoin(
                _inner_join, {"left": LEFT, "right": RIGHT}, task_bytes=1 << 30, min_tasks=min_tasks)
            rows = joined.main | beam.FlatMap(lambda t: [(r["id"], r["value"], r["text"]) for r in t.to_pylist()])
            missing = joined["rejected"] | beam.Map(lambda r: r["record_id"])
            assert_that(rows, equal_to(expected), label="Rows")
            assert_that(missing, equal_to(expected_missing), label="Missing")
