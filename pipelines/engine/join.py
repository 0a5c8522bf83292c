"""Joins of Arrow batches by integer id, partitioned through sorted runs on disk.

A join of two big inputs by id (MS MARCO's 270M triples with its 8.8M passages) done one
element at a time costs Beam's per-element overhead on every row, and on a local runner
a ``CoGroupByKey`` holds the whole shuffle in memory. Here the rows travel as Arrow
tables and the join is a partitioned hash join (a "Grace" join) in three steps:

1. **Spill** (:class:`SpillByHash`): each side's tables are buffered per bundle and
   written every ``spill_bytes`` as one run file (Arrow IPC; LZ4 on object stores), its rows sorted by
   :func:`id_hash` of the side's id column, one record batch per ``row_group_bytes``.
   Only the run's description (path, and per batch its first and last hash, rows and
   bytes) travels on through Beam.
2. **Plan**: from all descriptions, the total bytes decide the number
   of tasks, ``ceil(bytes / task_bytes)``; task ``j`` of ``n`` owns the hashes in
   ``[j, j + 1) * 2**64 / n`` and reads, from every run of every side, only the batches
   overlapping that range.
3. **Join**: one task holds its range of every side (about ``task_bytes``) and hands
   them as tables to the join function, which works vectorised (``pyarrow`` joins, sorts
   and filters) and yields Arrow tables and tagged rejects.

Because equal ids hash alike, every row of one id, on every side, lands in the same
task. Memory is bounded by a spill buffer and one task's share, whatever the input
size; the work is spread over as many workers as there are tasks; the result does not
depend on bundle boundaries (runs are re-cut by hash range, and join functions sort
what they emit or hand it to a sink that does). Run files live in the run's scratch folder and
are removed when the build finishes.
"""
from __future__ import annotations

import bisect
import math
import uuid
from typing import Callable

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from pipelines.engine import files, options
from pipelines.engine.arrow import tables
from pipelines.corpus.rejects import REJECTED

MiB = 1 << 20
HASH = "_hash"
_SPACE = 1 << 64


def text_key(text: str) -> int:
    """A signed 64-bit key of a text (XXH3-64 of its UTF-8), for joining by text with
    :class:`HashJoin`: texts with equal keys meet in one task, where the join compares the
    texts themselves (so a collision costs nothing but a shared task)."""
    key = xxhash.xxh3_64_intdigest(text.encode("utf-8", "surrogatepass"))
    return key - (1 << 64) if key >= 1 << 63 else key


def id_hash(ids) -> np.ndarray:
    """64-bit hashes of integer ids (SplitMix64's finaliser: fast, vectorised, the same on
    every machine), spreading consecutive ids evenly over the hash space."""
    x = np.asarray(pc.fill_null(ids, 0) if isinstance(ids, (pa.Array, pa.ChunkedArray)) else ids,
                   dtype=np.int64).view(np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(_GOLDEN)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(_MIX1)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(_MIX2)
        return x ^ (x >> np.uint64(31))


def id_hash_one(value: int) -> int:
    """:func:`id_hash` of one id, in plain Python (a numpy call per value costs more)."""
    x = (value + _GOLDEN) & _MASK64
    x = ((x ^ (x >> 30)) * _MIX1) & _MASK64
    x = ((x ^ (x >> 27)) * _MIX2) & _MASK64
    return x ^ (x >> 31)


# SplitMix64's constants.
_GOLDEN, _MIX1, _MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK64 = (1 << 64) - 1


def hash_range(task: int, tasks: int) -> tuple[int, int]:
    """``[low, high)`` of the hashes task ``task`` of ``tasks`` owns."""
    return task * _SPACE // tasks, (task + 1) * _SPACE // tasks


class SpillByHash(beam.DoFn):
    """Write the Arrow tables of one join side as runs sorted by the hash of ``key``.

    Args:
        spill_dir: folder for the run files (local or any Beam filesystem).
        key: the int64 id column the side is joined on.
        schema: the side's schema (every table is cast to it).
        spill_bytes: Arrow bytes buffered per bundle before a run is written.
        row_group_bytes: Arrow bytes per record batch of a run; a task reads whole
            batches, at least one of every run that has rows in its hash range, so it
            reads about (runs x this) beyond its own rows: small, since the number of
            runs grows with the input (1 MiB batches had PAQ's tasks read 5.6 times the
            join's bytes at 0.08 of its full size).
    Yields:
        Per run ``{"path": ..., "batches": [[first hash, last hash, rows, bytes], ...]}``.
    """

    def __init__(self, spill_dir: str, key: str, schema: pa.Schema, spill_bytes: int = 32 * MiB,
                 row_group_bytes: int = 128 * 1024):
        self.spill_dir = spill_dir
        self.key = key
        self.schema = schema
        self.spill_bytes = spill_bytes
        self.row_group_bytes = row_group_bytes

    def start_bundle(self):
        self._tables: list[pa.Table] = []
        self._bytes = 0

    def process(self, table: pa.Table):
        if table.num_rows == 0:
            return
        table = table.select(self.schema.names).cast(self.schema)
        for piece, size in cut_to_fit(table, table.nbytes, self.spill_bytes - self._bytes, self.spill_bytes):
            self._tables.append(piece)
            self._bytes += size
            if self._bytes >= self.spill_bytes:
                yield self._spill()

    def finish_bundle(self):
        if self._tables:
            yield GlobalWindows.windowed_value(self._spill())

    def _spill(self) -> dict:
        # Sorted straight from the buffered chunks: the take gathers each column into one
        # chunk (combining the chunks first copied every text once more: 30% slower).
        table = pa.concat_tables(self._tables).unify_dictionaries()
        self.start_bundle()
        hashes = id_hash(table[self.key])
        # (numpy's stable sort orders as Arrow's sort_by would, faster)
        table = table.append_column(HASH, pa.array(hashes, pa.uint64())).take(np.argsort(hashes, kind="stable"))
        rows_per_batch = max(1, self.row_group_bytes * table.num_rows // max(1, table.nbytes))
        slices = [(offset, min(rows_per_batch, table.num_rows - offset))
                  for offset in range(0, table.num_rows, rows_per_batch)]
        path, batches = write_run(self.spill_dir, table, HASH, slices)
        return {"path": path, "batches": [[first, last, chunk.num_rows, chunk.nbytes]
                                          for first, last, chunk in batches]}


def cut_to_fit(table: pa.Table, size: int, room: int, limit: int):
    """Zero-copy slices of ``table`` for a buffer that is spilled at ``limit`` bytes and has
    ``room`` bytes left: the first slice fills the room, each further one a whole buffer.

    A buffer that took whole tables and spilled once past its limit held up to the limit
    plus one table, and a join task's output table grows with the task (PAQ's at 4x input:
    runs of 57 MB for a 32 MB limit, and sorting them doubled that); cut, a run stays at
    the limit whatever the tables' sizes.

    Args:
        table: the incoming table.
        size: its bytes, as the buffer counts them (spread evenly over its rows).
        room: bytes left in the buffer (at least one row is always taken).
        limit: bytes of a full buffer.
    Yields:
        ``(slice, its bytes)``.
    """
    rows, offset, capacity = table.num_rows, 0, room
    per_row = size / max(1, rows)
    while offset < rows:
        count = max(1, min(rows - offset, int(capacity / per_row) if per_row else rows))
        yield table.slice(offset, count), round(count * per_row)
        offset += count
        capacity = limit


def write_run(directory: str, table: pa.Table, column: str, slices) -> tuple[str, list]:
    """Write a table sorted by ``column`` as one run file (Arrow IPC, see
    :func:`pipelines.engine.files.run_compression`) under ``directory``, a record batch per
    ``(offset, length)`` of ``slices``.

    Returns:
        The run's path and, per batch, ``(first value, last value, the batch's table)``
        of ``column``, from which callers describe the run (:func:`read_runs` reads it).
    """
    path = files.join(directory, f"run-{uuid.uuid4().hex}.arrow")
    batches = []
    with FileSystems.create(path) as stream:
        options = pa.ipc.IpcWriteOptions(compression=files.run_compression(path))
        with pa.ipc.new_file(stream, table.schema, options=options) as writer:
            for offset, length in slices:
                # One record batch per described batch, whatever the chunks of its columns:
                # readers find a batch by its index in the description.
                chunk = table.slice(offset, length).combine_chunks()
                writer.write_batch(chunk.to_batches()[0])  # slices are never empty
                values = chunk[column]
                batches.append((values[0].as_py(), values[-1].as_py(), chunk))
    return path, batches


def plan_tasks(runs: dict[str, list[dict]], task_bytes: int, min_tasks: int = 1) -> list[dict]:
    """The tasks of a join: per task its hash range and, per side, the run batches to read.

    Args:
        runs: per side name, the descriptions :class:`SpillByHash` emitted.
        task_bytes: Arrow bytes one task should hold.
        min_tasks: tasks at least, so that small joins still keep several workers busy.
    """
    total = sum(b[3] for side in runs.values() for run in side for b in run["batches"])
    count = max(min_tasks, math.ceil(total / task_bytes))
    # A run's batches are in hash order: a task's are found by bisection, not by a scan
    # of every batch for every task (tasks x batches grows with the square of the input).
    bounds = {side: [(run["path"], [b[0] for b in run["batches"]], [b[1] for b in run["batches"]])
                     for run in side_runs]
              for side, side_runs in runs.items()}
    tasks = []
    for j in range(count):
        low, high = hash_range(j, count)
        # A batch wholly inside the range is taken whole, without searching its hashes.
        reads = {side: sorted((path, index, firsts[index] >= low and lasts[index] < high)
                              for path, firsts, lasts in side_bounds
                              for index in range(bisect.bisect_left(lasts, low), bisect.bisect_left(firsts, high)))
                 for side, side_bounds in bounds.items()}
        tasks.append({"task": j, "of": count, "low": low, "high": high, "reads": reads})
    return tasks


class RunFiles:
    """Local run files kept open for the tasks of one bundle.

    A join or shard task reads a slice of every run, and opening a run reads and parses
    its footer (about 90 us); each task opening every run cost MS MARCO's 4x build some
    3,500 opens. Kept open here, a local run is read with positional reads instead of being
    memory-mapped: a mapping left open would count every page read through it in the
    process's memory until it is closed. Runs on object stores are opened per task (a
    download stream holds a buffer of its own). At most ``limit`` files are open at once.

    Args:
        limit: open files kept at most (the least recently used is closed first).
    """

    def __init__(self, limit: int = 128):
        self.limit = limit
        self._open: dict[str, tuple] = {}

    def reader(self, path: str) -> pa.ipc.RecordBatchFileReader:
        if path in self._open:
            entry = self._open.pop(path)
        else:
            if len(self._open) >= self.limit:
                self._close(next(iter(self._open)))
            stream = pa.OSFile(path, "rb")
            entry = (stream, pa.ipc.open_file(stream))
        self._open[path] = entry  # now the most recently used
        return entry[1]

    def _close(self, path: str) -> None:
        stream, _reader = self._open.pop(path)
        stream.close()

    def close(self) -> None:
        for path in list(self._open):
            self._close(path)


def read_runs(reads: list, column: str, low, high, run_files: RunFiles | None = None) -> list[pa.Table]:
    """The rows of run batches whose ``column`` lies in ``[low, high)`` (no upper bound when
    ``high`` is ``None``), one table per batch.

    Args:
        reads: ``(run path, batch index, wholly inside the range)``; a batch wholly inside is
            taken as it is (no copy).
        column: the column the runs are sorted by: ``uint64`` (bounds are ints) or
            fixed-size binary (bounds are bytes of that size).
        run_files: local runs already open (see :class:`RunFiles`); without it each run
            is opened for this call (a local one memory-mapped).
    """
    tables, by_path = [], {}
    for path, index, inside in reads:
        by_path.setdefault(path, []).append((index, inside))
    for path, indices in sorted(by_path.items()):
        if run_files is not None and files.is_local(path):
            tables.extend(_read_batches(run_files.reader(path), indices, column, low, high))
            continue
        with pa.memory_map(path) if files.is_local(path) else files.open_raw(path) as stream:
            tables.extend(_read_batches(pa.ipc.open_file(stream), indices, column, low, high))
    return tables


def _read_batches(run, indices, column: str, low, high) -> list[pa.Table]:
    tables = []
    for index, inside in indices:
        table = pa.Table.from_batches([run.get_batch(index)])
        batch_rows = table.num_rows
        if not inside:
            # The batch is sorted: the range is one slice of it.
            values = _sorted_values(table[column].chunk(0))
            first = int(np.searchsorted(values, _bound(values, low), "left"))
            last = len(values) if high is None else int(np.searchsorted(values, _bound(values, high), "left"))
            table = table.slice(first, max(0, last - first))
            if table.num_rows < batch_rows:
                # Copied out, so that the batch is freed: a task holds what it read of
                # every run, and a whole batch per run grows with the number of runs.
                table = table.take(np.arange(table.num_rows))
        tables.append(table)
    return tables


def _sorted_values(array: pa.Array) -> np.ndarray:
    """A sorted run column as numpy, without a copy (fixed-size binary as ``S<width>``,
    which numpy orders byte by byte)."""
    if pa.types.is_fixed_size_binary(array.type):
        width = array.type.byte_width
        return np.frombuffer(array.buffers()[1], dtype=f"S{width}", count=len(array),
                             offset=array.offset * width)
    return array.to_numpy(zero_copy_only=True)


def _bound(values: np.ndarray, bound):
    return np.array(bound, dtype=values.dtype)


def read_range(reads: list, schema: pa.Schema, low: int, high: int,
               run_files: RunFiles | None = None) -> pa.Table:
    """The rows of ``reads`` (see :func:`read_runs`) whose hash is in ``[low, high)``."""
    parts = [t.drop_columns([HASH])
             for t in read_runs(reads, HASH, low, None if high >= _SPACE else high, run_files)]
    if not parts:
        return schema.empty_table()
    # One chunk, not one per batch read: the join and every step after it pay per chunk.
    return pa.concat_tables(parts).cast(schema).unify_dictionaries().combine_chunks()


class _JoinTask(beam.DoFn):
    def __init__(self, join: Callable, schemas: dict[str, pa.Schema]):
        self.join = join
        self.schemas = schemas

    def start_bundle(self):
        self._run_files = RunFiles()

    def process(self, task):
        tables = {side: read_range(task["reads"].get(side, []), schema, task["low"], task["high"],
                                   self._run_files)
                  for side, schema in self.schemas.items()}
        yield from self.join(tables)

    def finish_bundle(self):
        self._run_files.close()


class JoinOutput:
    """What :class:`HashJoin` gives: ``.main`` (the join function's tables),
    ``[REJECTED]`` (its rejects) and ``.spilled[side]`` (each side's runs, which another
    join takes as that side with ``spilled=``, so that the same rows are spilled once)."""

    def __init__(self, result, spilled: dict):
        self.main = result.main
        self._rejects = result[REJECTED]
        self.spilled = spilled

    def __getitem__(self, tag: str):
        if tag != REJECTED:
            raise KeyError(tag)
        return self._rejects


class HashJoin(beam.PTransform):
    """Join ``{side: PCollection of Arrow tables}`` by an integer key with ``join`` (see the
    module doc): each side is spilled in runs in the run's scratch folder, and one task per hash
    range reads its rows of every side.

    The same on every runner: only the runs' descriptions go through the runner, so rows
    never pay Beam's per-element cost or the runner's shuffle (on Dataflow the runs are
    objects in the temporary bucket, written once and read once by range; see
    ``docs/architecture.md``, "Joins").

    Args:
        join: ``join(tables) -> iterable``: called once per task with ``{side: pa.Table}``
            (the task's rows of each side, the hash column removed); yields Arrow tables
            (the main output) and tagged rejects.
        keys: per side, the int64 column it is joined on.
        schemas: per side, its schema (every table is cast to it; a side without any row
            gives an empty table).
        task_bytes: Arrow bytes one task should hold (with the join's own working memory
            and its output, held while the next steps take it, several times that is
            needed). 8 MB: a join's tasks are this size from a small input on (the
            ``min_tasks`` split of a small one comes close to it), so that peak memory does
            not grow with the input; measured the same speed as 16 MB.
        min_tasks: tasks at least (a task with no row costs next to nothing; equal
            tasks let the runner share them evenly among its workers).
        spilled: sides given as the runs another join spilled (``output.spilled[side]``).
    Input: ``{side: PCollection}`` of Arrow tables (or of runs, for the ``spilled`` sides).
    Returns:
        A :class:`JoinOutput`.
    """

    def __init__(self, join: Callable, *, keys: dict[str, str], schemas: dict[str, pa.Schema],
                 task_bytes: int = 8 * MiB, min_tasks: int = 8, spilled: tuple[str, ...] = ()):
        super().__init__()
        self.spilled = frozenset(spilled)
        self.join = join
        self.keys = keys
        self.schemas = schemas
        self.task_bytes = task_bytes
        self.min_tasks = min_tasks

    def expand(self, sides):
        spilled = {}
        # Runs go to the run's scratch folder (--scratch_dir), removed when the build ends.
        spill_dir = options.scratch_folder(next(iter(sides.values())).pipeline.options, "joins")
        for side, pcoll in sorted(sides.items()):
            # Output: one description per run file of the side
            spilled[side] = pcoll if side in self.spilled else pcoll | f"Spill{side.title()}" >> beam.ParDo(
                SpillByHash(files.join(spill_dir, side), self.keys[side], self.schemas[side]))
        tagged = [runs | f"Tag{side.title()}" >> beam.Map(lambda run, side=side: (side, run))
                  for side, runs in spilled.items()]
        task_bytes, min_tasks = self.task_bytes, self.min_tasks
        result = (
            tagged
            | "FlattenRuns" >> beam.Flatten()
            | "CollectRuns" >> beam.combiners.ToList()
            | "PlanTasks" >> beam.FlatMap(lambda runs: plan_tasks(_by_side(runs), task_bytes, min_tasks))
            | "SpreadTasks" >> beam.Reshuffle()
            | "Join" >> tables(beam.ParDo(_JoinTask(self.join, self.schemas)))
            .with_outputs(REJECTED, main="main")
        )
        return JoinOutput(result, spilled)


def _by_side(tagged_runs) -> dict[str, list[dict]]:
    by_side: dict[str, list[dict]] = {}
    for side, run in sorted(tagged_runs, key=lambda item: (item[0], item[1]["path"])):
        by_side.setdefault(side, []).append(run)
    return by_side


