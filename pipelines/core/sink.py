"""Deterministic sharded output: the same input gives the same files on every runner.

:class:`WriteShards` writes one dataset (or its rejected records) as
``<dir>/<prefix>-SSSSS-of-NNNNN.<ext>``:

1. **Plan.** Rows are measured per subset (count and text bytes). Subsets smaller than
   ``pool_below`` rows are pooled into one group (StackExchange's small sites); every
   group gets ``ceil(bytes / target_shard_bytes)`` shards of its own, groups in name
   order. A shard therefore never mixes two StackExchange sites, so each site is its own
   set of files as well as part of its dataset.
2. **Assign.** Each row's 64-bit BLAKE2 key (over its content and provenance) picks a
   shard inside its group: ``offset + key % shards``. Rows are batched per shard inside
   a bundle before the shuffle, which cuts the per-element cost.
3. **Write.** After ``GroupByKey`` a shard's rows are sorted by key and written to a
   temporary name, then renamed into place, so a half-written shard is never visible
   under its final name. Shards the hash left empty are written empty, so ``-of-NNNNN``
   is always complete, and stale shards of an earlier run with another shard count are
   removed.

The content of a shard depends only on the rows, never on bundle boundaries or on the
order a runner delivers them in.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import posixpath
import uuid
from collections import Counter
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from pipelines.core import files
from pipelines.core.schema import row_arrow_schema

MiB = 1 << 20
# Fixed per-row overhead added to the text length when estimating a row's size.
ROW_OVERHEAD_BYTES = 64
# Rows buffered per shard inside a bundle before they are emitted as one element.
ASSIGN_BATCH_ROWS = 2000


@dataclass(frozen=True)
class ShardingConfig:
    """How output is cut into files.

    Attributes:
        target_shard_bytes: text bytes per shard (before compression). 384 MiB of text
            gives Parquet shards of roughly 128-256 MB with zstd.
        row_group_bytes: text bytes per Parquet row group; 64 MiB keeps a row group
            large enough for fast scans and small enough to stream.
        compression: Parquet codec.
    """

    target_shard_bytes: int = 384 * MiB
    row_group_bytes: int = 64 * MiB
    compression: str = "zstd"


def row_key(record: dict) -> int:
    """64-bit BLAKE2b key of a record's values, in field order (stable across runs)."""
    digest = hashlib.blake2b(digest_size=8)
    for value in record.values():
        digest.update(b"\x00" if value is None else str(value).encode("utf-8", "surrogatepass"))
        digest.update(b"\x1f")
    return int.from_bytes(digest.digest(), "big")


def record_size(record: dict) -> int:
    """Estimated bytes of a record: its text lengths plus a fixed overhead."""
    return ROW_OVERHEAD_BYTES + sum(len(v) for v in record.values() if isinstance(v, str))


def shard_name(prefix: str, index: int, total: int, ext: str) -> str:
    return f"{prefix}-{index:05d}-of-{total:05d}.{ext}"


def plan_shards(subset_stats, target_shard_bytes: int, pool_below: int = 0,
                pool_name: str = "") -> dict:
    """Decide the shards of one output from its per-subset sizes.

    Args:
        subset_stats: iterable of ``(subset, (rows, bytes))``.
        target_shard_bytes: bytes per shard to aim for.
        pool_below: subsets with fewer rows than this share the group ``pool_name``.
        pool_name: name of the pooled group.
    Returns:
        A JSON-able plan: ``{"total": N, "groups": {group: [offset, shards]},
        "subset_group": {subset: group}, "group_rows": {group: rows}}``.
    """
    group_sizes: dict[str, list[int]] = {}
    subset_group = {}
    for subset, (rows, size) in sorted(subset_stats):
        group = pool_name if pool_below and rows < pool_below else subset
        subset_group[subset] = group
        acc = group_sizes.setdefault(group, [0, 0])
        acc[0] += rows
        acc[1] += size
    groups, offset = {}, 0
    for group in sorted(group_sizes):
        rows, size = group_sizes[group]
        count = max(1, min(rows, math.ceil(size / target_shard_bytes)))
        groups[group] = [offset, count]
        offset += count
    return {
        "total": offset,
        "groups": groups,
        "subset_group": subset_group,
        "group_rows": {g: v[0] for g, v in group_sizes.items()},
    }


class ParquetShards:
    """Shards of corpus rows as Parquet, in the schema of ``schemas/corpus_row.json``."""

    ext = "parquet"

    def __init__(self, config: ShardingConfig):
        self.config = config

    def write(self, records: list[dict], stream) -> None:
        schema = row_arrow_schema()
        table = pa.Table.from_pylist(records, schema=schema)
        avg = max(1, sum(record_size(r) for r in records[:1000]) // max(1, min(len(records), 1000)))
        row_group_rows = max(1, self.config.row_group_bytes // avg)
        pq.write_table(table, stream, row_group_size=row_group_rows,
                       compression=self.config.compression)

    @staticmethod
    def summarize(records: list[dict]) -> dict:
        return {"subsets": dict(sorted(Counter(r["subset"] for r in records).items()))}


class JsonLinesGzipShards:
    """Shards of rejected records as gzip-compressed JSON lines (mtime fixed at 0, so
    identical content gives identical bytes)."""

    ext = "jsonl.gz"

    def write(self, records: list[dict], stream) -> None:
        with gzip.GzipFile(fileobj=stream, mode="wb", mtime=0) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            for record in records:
                text.write(json.dumps(record, ensure_ascii=False, sort_keys=True))
                text.write("\n")
            text.flush()
            text.detach()

    @staticmethod
    def summarize(records: list[dict]) -> dict:
        return {
            "subsets": {},
            "reasons": dict(sorted(Counter(r["reason"] for r in records).items())),
        }


class _AssignShard(beam.DoFn):
    """Key each record, pick its shard from the plan, emit per-shard batches."""

    def __init__(self, subset_field: str | None):
        self.subset_field = subset_field

    def start_bundle(self):
        self._buffers: dict[int, list] = {}

    def process(self, record, plan):
        subset = record.get(self.subset_field, "") if self.subset_field else ""
        offset, count = plan["groups"][plan["subset_group"][subset]]
        key = row_key(record)
        shard = offset + key % count
        buffer = self._buffers.setdefault(shard, [])
        buffer.append((key, record))
        if len(buffer) >= ASSIGN_BATCH_ROWS:
            del self._buffers[shard]
            yield shard, buffer

    def finish_bundle(self):
        for shard, buffer in sorted(self._buffers.items()):
            yield GlobalWindows.windowed_value((shard, buffer))
        self._buffers = {}


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

    def process(self, element, plan):
        shard, batches = element
        keyed = [item for batch in batches for item in batch]
        keyed.sort(key=_first)
        if any(keyed[i][0] == keyed[i + 1][0] for i in range(len(keyed) - 1)):
            # Equal keys: identical records or (rarely) a hash collision; order them by content.
            keyed.sort(key=lambda item: (item[0], json.dumps(item[1], sort_keys=True, default=str)))
        records = [record for _, record in keyed]
        path = files.join(self.directory, shard_name(self.prefix, shard, plan["total"], self.format.ext))
        size = _write_atomically(path, lambda stream: self.format.write(records, stream))
        info = {"shard": shard, "path": path, "rows": len(records), "bytes": size}
        info.update(self.format.summarize(records))
        yield info


def _first(item):
    return item[0]


def _group_of_shard(plan: dict, shard: int) -> str:
    for group, (offset, count) in plan["groups"].items():
        if offset <= shard < offset + count:
            return group
    raise ValueError(f"shard {shard} outside the plan")


class _Finalize(beam.DoFn):
    """Write the shards the hash left empty, remove stale ones, return the summary."""

    def __init__(self, directory: str, prefix: str, shard_format):
        self.directory = directory
        self.prefix = prefix
        self.format = shard_format

    def process(self, _, plan, infos):
        by_shard = {info["shard"]: info for info in infos}
        for shard in range(plan["total"]):
            if shard not in by_shard:
                path = files.join(self.directory, shard_name(self.prefix, shard, plan["total"], self.format.ext))
                size = _write_atomically(path, lambda stream: self.format.write([], stream))
                by_shard[shard] = {"shard": shard, "path": path, "rows": 0, "bytes": size,
                                   **self.format.summarize([])}
        wanted = {info["path"] for info in by_shard.values()}
        pattern = files.join(self.directory, f"{self.prefix}-*-of-*.{self.format.ext}*")
        stale = [m.path for m in FileSystems.match([pattern])[0].metadata_list if m.path not in wanted]
        if stale:
            FileSystems.delete(stale)
        shards = []
        for shard in sorted(by_shard):
            info = dict(by_shard[shard])
            info["group"] = _group_of_shard(plan, shard)
            info["file"] = posixpath.basename(info.pop("path"))
            shards.append(info)
        yield {"prefix": self.prefix, "directory": self.directory, "plan": plan, "shards": shards}


class WriteShards(beam.PTransform):
    """Write a PCollection of dict records as deterministic shards.

    Args:
        directory: output folder (local or any Beam filesystem).
        prefix: file name prefix, usually the dataset id.
        shard_format: :class:`ParquetShards` or :class:`JsonLinesGzipShards`.
        config: :class:`ShardingConfig`.
        subset_field: record field whose value groups shards (``"subset"``), or ``None``.
        pool_below, pool_name: subsets with fewer rows share one group (see
            :func:`plan_shards`).
    Returns:
        A PCollection with one summary dict: the plan and per shard its file name,
        rows, bytes, group and per-subset (or per-reason) counts.
    """

    def __init__(self, directory: str, prefix: str, shard_format, config: ShardingConfig,
                 subset_field: str | None = "subset", pool_below: int = 0, pool_name: str = ""):
        super().__init__()
        self.directory = directory
        self.prefix = prefix
        self.format = shard_format
        self.config = config
        self.subset_field = subset_field
        self.pool_below = pool_below
        self.pool_name = pool_name

    def expand(self, records):
        subset_field = self.subset_field
        plan = (
            records
            | "MeasureSubsets" >> beam.Map(
                lambda r: (r.get(subset_field, "") if subset_field else "", (1, record_size(r))))
            | "SumSubsets" >> beam.CombinePerKey(lambda values: tuple(map(sum, zip(*values))) or (0, 0))
            | "CollectSubsets" >> beam.combiners.ToList()
            | "PlanShards" >> beam.Map(plan_shards, self.config.target_shard_bytes,
                                       self.pool_below, self.pool_name)
        )
        plan_side = beam.pvalue.AsSingleton(plan)
        written = (
            records
            | "AssignShards" >> beam.ParDo(_AssignShard(subset_field), plan_side)
            | "GroupByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteShard(self.directory, self.prefix, self.format), plan_side)
        )
        return (
            records.pipeline
            | "FinalizeSeed" >> beam.Create([None])
            | "Finalize" >> beam.ParDo(_Finalize(self.directory, self.prefix, self.format),
                                       plan_side, beam.pvalue.AsList(written))
        )
