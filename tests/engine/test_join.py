"""Partitioned hash joins of Arrow tables (pipelines.engine.join)."""
from __future__ import annotations

import random

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.testing.util import assert_that, equal_to

from pipelines.engine.arrow import ArrowTableCoder
from pipelines.engine.join import (HashJoin, RunFiles, SpillByHash, cut_to_fit,
                                     hash_range, id_hash, plan_tasks, read_range)
from pipelines.corpus.rejects import rejected

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


def test_plan_finds_the_same_batches_as_a_scan_of_every_batch():
    """The plan bisects each run's batches; a batch overlaps a task's range when its last
    hash is at or above the range's start and its first below its end (equal hashes may
    end one batch and begin the next)."""
    rng = random.Random(5)
    runs = {}
    for side in ("a", "b"):
        runs[side] = []
        for r in range(4):
            hashes = sorted(rng.choice([rng.randrange(1 << 64), 1 << 62, (1 << 64) - 1]) for _ in range(60))
            cuts = sorted(rng.sample(range(1, 60), 9))
            batches = [[hashes[a], hashes[b - 1], b - a, 10 * (b - a)]
                       for a, b in zip([0] + cuts, cuts + [60])]
            runs[side].append({"path": f"{side}{r}", "batches": batches})
    for count in (1, 3, 7, 64):
        for task in plan_tasks(runs, task_bytes=1 << 40, min_tasks=count):
            low, high = task["low"], task["high"]
            for side, side_runs in runs.items():
                scanned = sorted((run["path"], index, first >= low and last < high)
                                 for run in side_runs
                                 for index, (first, last, _rows, _bytes) in enumerate(run["batches"])
                                 if last >= low and first < high)
                assert task["reads"][side] == scanned


def test_a_task_keeps_a_copy_of_the_rows_in_range_not_the_whole_batch(tmp_path):
    spill = SpillByHash(str(tmp_path), "id", LEFT, spill_bytes=1 << 30, row_group_bytes=1 << 20)
    spill.start_bundle()
    table = pa.table({"id": list(range(20_000)), "value": [f"value {i}" for i in range(20_000)]}, schema=LEFT)
    assert list(spill.process(table)) == []
    (run,) = [w.value if hasattr(w, "value") else w for w in spill.finish_bundle()]
    assert len(run["batches"]) == 1
    tasks = plan_tasks({"left": [run]}, task_bytes=1 << 40, min_tasks=50)
    part = read_range(tasks[0]["reads"]["left"], LEFT, tasks[0]["low"], tasks[0]["high"])
    assert 0 < part.num_rows < 1_000
    # Its buffers hold its own rows (about a fiftieth of the batch), so the batch is freed.
    assert part.get_total_buffer_size() < table.nbytes / 10


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


def test_runs_kept_open_read_the_same_rows_and_close_beyond_the_limit(tmp_path):
    runs = []
    for n in range(3):
        spill = SpillByHash(str(tmp_path), "id", LEFT, spill_bytes=1 << 30, row_group_bytes=64)
        spill.start_bundle()
        ids = list(range(n * 200, n * 200 + 200))
        assert list(spill.process(pa.table({"id": ids, "value": [f"v{i}" for i in ids]}, schema=LEFT))) == []
        runs.extend(w.value if hasattr(w, "value") else w for w in spill.finish_bundle())
    tasks = plan_tasks({"left": runs}, task_bytes=1, min_tasks=4)
    run_files = RunFiles(limit=2)
    kept_open = [read_range(t["reads"]["left"], LEFT, t["low"], t["high"], run_files) for t in tasks]
    assert len(run_files._open) == 2  # the least recently used third run was closed
    opened_each_time = [read_range(t["reads"]["left"], LEFT, t["low"], t["high"]) for t in tasks]
    assert [t.to_pylist() for t in kept_open] == [t.to_pylist() for t in opened_each_time]
    assert sorted(v for t in kept_open for v in t["id"].to_pylist()) == list(range(600))
    run_files.close()
    assert not run_files._open


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
                _inner_join, keys={"left": "id", "right": "key"}, schemas={"left": LEFT, "right": RIGHT},
                task_bytes=1 << 30, min_tasks=min_tasks,
                spilled=("left", "right"))
            rows = joined.main | beam.FlatMap(lambda t: [(r["id"], r["value"], r["text"]) for r in t.to_pylist()])
            missing = joined["rejected"] | beam.Map(lambda r: r["record_id"])
            assert_that(rows, equal_to(expected), label="Rows")
            assert_that(missing, equal_to(expected_missing), label="Missing")


def test_a_join_spills_its_sides_itself_and_a_spilled_side_joins_again(tmp_path):
    left_rows = [{"id": i % 50, "value": f"l{i}"} for i in range(400)]
    right_rows = [{"key": k, "text": f"t{k}"} for k in range(0, 50, 2)]
    expected = [(r["id"], r["value"], f"t{r['id']}") for r in left_rows if r["id"] % 2 == 0]
    options = PipelineOptions([f"--scratch_dir={tmp_path / 'scratch'}"])  # where the runs go
    with beam.Pipeline(runner="FnApiRunner", options=options) as pipeline:
        left = pipeline | "L" >> beam.Create([pa.Table.from_pylist(left_rows[i:i + 30], schema=LEFT)
                                              for i in range(0, len(left_rows), 30)])
        right = pipeline | "R" >> beam.Create([pa.Table.from_pylist(right_rows, schema=RIGHT)])
        join = dict(keys={"left": "id", "right": "key"}, schemas={"left": LEFT, "right": RIGHT})
        first = {"left": left, "right": right} | "First" >> HashJoin(_inner_join, **join)
        again = {"left": first.spilled["left"], "right": first.spilled["right"]} | "Again" >> HashJoin(
            _inner_join, spilled=("left", "right"), **join)
        for label, joined in (("first", first), ("again", again)):
            rows = joined.main | f"Rows{label}" >> beam.FlatMap(
                lambda t: [(r["id"], r["value"], r["text"]) for r in t.to_pylist()])
            assert_that(rows, equal_to(expected), label=f"Check{label}")
    assert {p.name for p in (tmp_path / "scratch" / "joins").iterdir()} == {"left", "right"}


def test_cut_to_fit_fills_the_room_then_whole_buffers_and_loses_no_row():
    table = pa.table({"id": pa.array(range(1000), pa.int64()), "text": [f"row {i:04d}" for i in range(1000)]})
    size = 10_000  # 10 bytes a row as the buffer counts them
    pieces = list(cut_to_fit(table, size, room=2_500, limit=3_000))
    assert [p.num_rows for p, _ in pieces] == [250, 300, 300, 150]
    assert [b for _, b in pieces] == [2_500, 3_000, 3_000, 1_500]
    assert pa.concat_tables([p for p, _ in pieces]).equals(table)
    # A row larger than the room or the limit still goes, one at a time.
    assert [p.num_rows for p, _ in cut_to_fit(table.slice(0, 3), 300, room=10, limit=50)] == [1, 1, 1]
    assert [p.num_rows for p, _ in cut_to_fit(table.slice(0, 3), 0, room=0, limit=50)] == [3]


def test_runs_stay_at_the_spill_limit_whatever_the_incoming_tables(tmp_path):
    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    big = pa.table({"id": pa.array(range(20_000), pa.int64()), "text": ["x" * 50] * 20_000}, schema=schema)
    spill = SpillByHash(str(tmp_path), "id", schema, spill_bytes=big.nbytes // 5, row_group_bytes=1 << 16)
    spill.start_bundle()
    runs = [run for table in (big.slice(0, 7_000), big.slice(7_000)) for run in spill.process(table)]
    runs += list(spill.finish_bundle())
    runs = [getattr(run, "value", run) for run in runs]  # finish_bundle's are windowed
    rows = [sum(batch[2] for batch in run["batches"]) for run in runs]
    # 20,000 rows at 4,000 per full buffer: five runs of 4,000, none holding a whole table.
    assert sum(rows) == big.num_rows
    assert len(rows) == 5 and all(abs(count - 4_000) <= 2 for count in rows), rows


