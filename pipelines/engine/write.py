"""Deterministic sharded output: the same input gives the same files on every runner.

:class:`WriteShards` writes one dataset (or its rejected records) as
``<dir>/<prefix>-SSSSS-of-NNNNN.<ext>`` without ever shuffling the rows themselves:

1. **Spill.** Records arrive one by one (dicts) or as Arrow tables of rows, and are
   buffered per bundle; every ``spill_bytes`` the buffer becomes one table, each record
   keyed by a 128-bit XXH3 hash of all its fields (content and provenance, computed
   from the table without a Python object per value; for a dataset with repeated texts
   (the shard format's ``repeated_texts``) the key's first 64 bits hash the first one's
   text instead), sorted by (subset, key)
   and written as one *run* under ``spill_dir`` (an Arrow IPC file, LZ4-compressed on object
   stores, see :func:`pipelines.engine.files.run_compression`; a subset per
   record batch, called row group below). A repeated text (the shard format's
   ``repeated_texts``) is stored once for the rows after it that share it and its group
   (:func:`~pipelines.engine.spill.elide_repeats`), and the columns with a handful of
   values (its ``few_values``) are dictionary-encoded
   (:func:`~pipelines.engine.spill.dictionary_encoded`). Only the run's description (row
   groups with their subset, key range, rows and bytes) travels on.
   Memory is bounded by the buffer, whatever the input size.
2. **Plan.** From the runs' descriptions: rows and bytes per subset; subsets smaller than
   ``pool_below`` rows are pooled into one group (StackExchange's small sites); every
   group gets ``ceil(bytes / target_shard_bytes)`` shards of its own, groups in name
   order. A shard therefore never mixes two StackExchange sites, so each site is its own
   set of files as well as part of its dataset. Shard ``j`` of a group with ``n`` shards
   holds the keys in ``[j, j + 1) * 2**64 / n`` of the key's first 64 bits, so records
   sharing that first repeated text share a shard.
3. **Write.** One task per shard reads the row groups of every run that overlap its
   group and key range, cuts its key range into row groups and orders each one's rows by
   the key's second half (:func:`~pipelines.engine.shards.shard_layout`: a shuffle, in
   which the rows sharing a group text share a row group, where dictionary encoding
   stores the text once, spread over it rather than side by side) and writes them to a
   temporary name that is renamed into place, so a half-written shard is never visible
   under its final name. Every shard of the plan is written, empty ones included, so
   ``-of-NNNNN`` is always complete.
4. **Finalize.** Stale shards of an earlier run with another shard count and the spill
   runs are removed; a summary (plan, per shard rows, bytes, subsets or reasons) is
   returned.

A shard's bytes depend only on the records, never on bundle boundaries or on the order
a runner delivers them in. Memory is bounded by one shard (``target_shard_bytes``): its
rows as read from the runs, and one row group at a time ordered and written.

The parts: row keys, the plan and the shard formats in :mod:`pipelines.engine.shards`,
step 1 in :mod:`pipelines.engine.spill`, steps 2 to 4 here (:class:`WriteShards`).
"""
from __future__ import annotations

import posixpath
import uuid

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from pipelines.engine import files
from pipelines.engine.join import RunFiles, read_runs
from pipelines.engine.shards import (GROUP_BYTES, KEY, KEY_BYTES, KEY_SPACE, ShardingConfig, plan_tasks,
                                     shard_layout, shard_name)
from pipelines.engine.spill import SpillRuns, restore_repeats


# -- step 3: write one shard -------------------------------------------------------------------

def _write_atomically(path: str, write) -> int:
    """Write ``path`` through a temporary name and rename it into place; return its size."""
    temp = f"{path}.inprogress-{uuid.uuid4().hex}"
    with FileSystems.create(temp) as stream:
        write(stream)
    FileSystems.rename([temp], [path])
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


class _WriteShard(beam.DoFn):
    def __init__(self, directory: str, prefix: str, shard_format):
        self.directory = directory
        self.prefix = prefix
        self.format = shard_format

    def start_bundle(self):
        self._run_files = RunFiles()

    def finish_bundle(self):
        self._run_files.close()

    def process(self, task, plan):
        schema = self.format.schema()
        key_schema = schema.append(pa.field(KEY, pa.binary(KEY_BYTES)))
        parts = read_runs(task["reads"], KEY, task["low"], task["high"], self._run_files)
        # Ordered straight from the runs' batches (the take copies each text once;
        # combining them first copied it twice).
        table = pa.concat_tables(parts) if parts else key_schema.empty_table()
        table = restore_repeats(table, self.format.repeated_texts)
        # Equal keys are identical records (128-bit hashes do not collide in practice), so
        # the key alone fixes the order.
        low = int.from_bytes(task["low"][:GROUP_BYTES], "big")
        high = KEY_SPACE if task["high"] is None else int.from_bytes(task["high"][:GROUP_BYTES], "big")
        order, lengths = shard_layout(table[KEY], low, high, self.format.row_groups(table))
        table = table.drop_columns([KEY])

        def row_groups():
            # Ordered and decoded one row group at a time: the shard's rows are held once.
            offset = 0
            for length in lengths or [0]:
                yield table.take(order.slice(offset, length)).cast(schema)
                offset += length

        path = files.join(self.directory, shard_name(self.prefix, task["shard"], plan["total"],
                                                     self.format.ext))
        size = _write_atomically(path, lambda stream: self.format.write(row_groups(), schema, stream))
        info = {"shard": task["shard"], "path": path, "rows": table.num_rows, "bytes": size,
                "group": task["group"]}
        info.update(self.format.summarize(table))
        yield info


# -- step 4: finalize --------------------------------------------------------------------------

class _Finalize(beam.DoFn):
    """Remove stale shards and the spill runs; return the summary."""

    def __init__(self, directory: str, prefix: str, shard_format, spill_dir: str):
        self.directory = directory
        self.prefix = prefix
        self.format = shard_format
        self.spill_dir = spill_dir

    def process(self, _, plan, infos):
        wanted = {info["path"] for info in infos}
        pattern = files.join(self.directory, f"{self.prefix}-*-of-*.{self.format.ext}*")
        stale = [m.path for m in FileSystems.match([pattern])[0].metadata_list if m.path not in wanted]
        spilled = [path for path, _ in files.list_files(files.join(self.spill_dir, "**"))]
        if stale or spilled:
            FileSystems.delete(stale + spilled)
        shards = []
        for info in sorted(infos, key=lambda i: i["shard"]):
            info = dict(info)
            info["file"] = posixpath.basename(info.pop("path"))
            shards.append(info)
        yield {"prefix": self.prefix, "directory": self.directory, "plan": plan, "shards": shards}


class WriteShards(beam.PTransform):
    """Write a PCollection of dict records as deterministic shards (see the module doc).

    Args:
        directory: output folder (local or any Beam filesystem).
        prefix: file name prefix, usually the dataset id.
        shard_format: :class:`~pipelines.engine.shards.ParquetShards` or
            :class:`~pipelines.engine.shards.JsonLinesGzipShards`.
        config: :class:`~pipelines.engine.shards.ShardingConfig`.
        subset_field: record field whose value groups shards (``"subset"``), or ``None``.
        pool_below, pool_name: subsets with fewer rows share one group (see
            :func:`~pipelines.engine.shards.plan_shards`).
        spill_dir: folder for the temporary sorted runs, outside ``directory``; its files
            are removed when the shards are written.
        spilled: the input holds the runs' descriptions (from
            :class:`~pipelines.engine.spill.SpillByDataset`), not the records.
    The records sharing the text of the shard format's first ``repeated_texts`` column
    (MS MARCO's query) go to the same shard (see :func:`~pipelines.engine.shards.row_key`).

    Returns:
        A PCollection with one summary dict: the plan and per shard its file name,
        rows, bytes, group and per-subset (or per-reason) counts.
    """

    def __init__(self, directory: str, prefix: str, shard_format, config: ShardingConfig, *,
                 spill_dir: str, subset_field: str | None = "subset", pool_below: int = 0,
                 pool_name: str = "", spilled: bool = False):
        super().__init__()
        self.spilled = spilled
        self.directory = directory
        self.prefix = prefix
        self.format = shard_format
        self.config = config
        self.subset_field = subset_field
        self.pool_below = pool_below
        self.pool_name = pool_name
        self.spill_dir = spill_dir

    def expand(self, records):
        if not self.spilled:
            records = records | "SpillSortedRuns" >> beam.ParDo(
                SpillRuns(self.spill_dir, self.subset_field, self.format, self.config))
        runs = records | "CollectRuns" >> beam.combiners.ToList()
        planned = runs | "PlanShards" >> beam.Map(
            lambda all_runs: plan_tasks(sorted(all_runs, key=lambda r: r["path"]), self.config,
                                        self.pool_below, self.pool_name))
        plan = planned | "Plan" >> beam.Map(lambda item: item[0])
        plan_side = beam.pvalue.AsSingleton(plan)
        written = (
            planned
            | "Tasks" >> beam.FlatMap(lambda item: item[1])
            | "SpreadTasks" >> beam.Reshuffle()
            | "WriteShard" >> beam.ParDo(_WriteShard(self.directory, self.prefix, self.format), plan_side)
        )
        return (
            records.pipeline
            | "FinalizeSeed" >> beam.Create([None])
            | "Finalize" >> beam.ParDo(_Finalize(self.directory, self.prefix, self.format, self.spill_dir),
                                       plan_side, beam.pvalue.AsList(written))
        )
