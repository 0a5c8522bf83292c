"""Shards of the corpus: row keys, the shard plan and layout, and the shard file formats.

The Beam-free half of the sharded sink (:class:`pipelines.engine.write.WriteShards`):
the 128-bit key every row is sorted and sharded by (:func:`row_keys`), how subsets are
cut into shards and which run row groups each shard reads (:func:`plan_shards`,
:func:`plan_tasks`), the order a shard writes its rows in (:func:`shard_layout`), and
the formats of the shard files (:class:`ParquetShards`, :class:`JsonLinesGzipShards`),
configured by :class:`ShardingConfig`.
"""
from __future__ import annotations

import gzip
import io
import json
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pyarrow as pa
import xxhash
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pipelines.corpus.schema import dictionary_columns, load_schema_document, row_arrow_schema

MiB = 1 << 20
# Fixed per-row overhead added to the text length when estimating a row's size.
ROW_OVERHEAD_BYTES = 64
KEY = "_key"
KEY_BYTES = 16
# Bytes of a key that hash the group text, when a dataset has one (see row_key).
GROUP_BYTES = 8
KEY_SPACE = 1 << 64


@dataclass(frozen=True)
class ShardingConfig:
    """How output is cut into files.

    Attributes:
        target_shard_bytes: text bytes per shard (before compression). 384 MiB of text
            gives Parquet shards of roughly 128-256 MB with zstd.
        row_group_bytes: text bytes per Parquet row group; 64 MiB keeps a row group
            large enough for fast scans and small enough to stream.
        compression: Parquet codec of the shards.
        spill_bytes: text bytes buffered per bundle before a sorted run is spilled; bounds
            the memory of the writing step.
        spill_row_group_bytes: text bytes per row group of a spilled run; a shard reads
            whole row groups, so smaller ones mean less reading outside its key range.
    """

    target_shard_bytes: int = 384 * MiB
    row_group_bytes: int = 64 * MiB
    compression: str = "zstd"
    spill_bytes: int = 32 * MiB
    spill_row_group_bytes: int = 1 * MiB


def row_key(record: dict, group_field: str | None = None) -> bytes:
    """128-bit key of a record: the XXH3-128 of its values in field order (stable across
    runs, machines and xxhash versions), the same key :func:`row_keys` gives the record in
    a table. With ``group_field``, the first 8 bytes are the XXH3-64 of that field's text
    instead, so that records sharing that text share a key range (see :mod:`pipelines.engine.write`)."""
    joined = "".join(("\x00" if value is None else str(value)) + "\x1f" for value in record.values())
    key = xxhash.xxh3_128_digest(joined.encode("utf-8", "surrogatepass"))
    if group_field is None:
        return key
    value = record[group_field]
    text = "\x00" if value is None else str(value)
    return xxhash.xxh3_64_digest(text.encode("utf-8", "surrogatepass")) + key[GROUP_BYTES:]


# Rows whose fields are joined at a time to be hashed: the joined bytes stay in the CPU's
# cache between the join and the hash (30% faster than joining a whole table first).
KEY_BATCH_ROWS = 4096


def row_keys(table: pa.Table, group_column: str | None = None) -> pa.Array:
    """:func:`row_key` of every row of ``table`` (string columns), as ``binary(16)``; with
    ``group_column``, the first 8 bytes hash that column's text (``row_key``'s ``group_field``).

    The fields are joined by pyarrow, ``KEY_BATCH_ROWS`` rows at a time; only the hash
    itself is called per row, on a view of the joined bytes.
    """
    keys = b"".join(_joined_row_keys(table.slice(offset, KEY_BATCH_ROWS))
                    for offset in range(0, table.num_rows, KEY_BATCH_ROWS))
    if group_column is not None and table.num_rows:
        column = table[group_column]
        column = pc.fill_null(column, "\x00") if column.null_count else column
        merged = np.frombuffer(keys, np.uint8).reshape(-1, KEY_BYTES).copy()
        groups = b"".join(_digests(chunk, xxhash.xxh3_64_digest) for chunk in column.chunks)
        merged[:, :GROUP_BYTES] = np.frombuffer(groups, np.uint8).reshape(-1, GROUP_BYTES)
        keys = merged.tobytes()
    return pa.Array.from_buffers(pa.binary(KEY_BYTES), table.num_rows, [None, pa.py_buffer(keys)])


def _joined_row_keys(table: pa.Table) -> bytes:
    columns = [table[name] for name in table.schema.names]
    trailing = pa.array([""] * table.num_rows, pa.string())
    joined = pc.binary_join_element_wise(*columns, trailing, "\x1f", null_handling="replace",
                                         null_replacement="\x00")
    joined = joined.combine_chunks() if isinstance(joined, pa.ChunkedArray) else joined
    return _digests(joined, xxhash.xxh3_128_digest)


def _digests(strings: pa.Array, digest) -> bytes:
    """``digest`` of every value of a string array without nulls, concatenated; called on
    views of the array's bytes, not on a Python string per value."""
    _validity, offsets, data = strings.buffers()
    width = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    bounds = np.frombuffer(offsets, dtype=width)[strings.offset:strings.offset + len(strings) + 1].tolist()
    view = memoryview(data) if data is not None else memoryview(b"")
    return b"".join([digest(view[start:end]) for start, end in zip(bounds, bounds[1:])])


def key_halves(keys) -> tuple[np.ndarray, np.ndarray]:
    """The first and second 64 bits of each ``binary(16)`` key (an array or chunked
    array), as ``uint64``; the first is the group hash where a dataset has one."""
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    if not len(keys):
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    halves = np.frombuffer(keys.buffers()[1], dtype=">u8", count=2 * len(keys),
                           offset=keys.offset * KEY_BYTES).reshape(-1, 2)
    return halves[:, 0].astype(np.uint64), halves[:, 1].astype(np.uint64)


def text_bytes(column) -> int:
    """UTF-8 bytes of a text column (a string or dictionary array, chunked or not)."""
    if not pa.types.is_dictionary(column.type):
        return pc.sum(pc.binary_length(column)).as_py() or 0
    total = 0
    for chunk in column.chunks if isinstance(column, pa.ChunkedArray) else [column]:
        lengths = pc.binary_length(chunk.dictionary).to_numpy(zero_copy_only=False)
        total += int(lengths[chunk.indices.to_numpy(zero_copy_only=False)].sum())
    return total


def shard_layout(keys, low: int, high: int, row_groups: int) -> tuple[pa.Array, list[int]]:
    """The order a shard's rows are written in, and the lengths of its row groups.

    The shard holds the keys whose first half lies in ``[low, high)``; that range is cut
    into ``row_groups`` equal parts, a row group each, and within a row group the rows are
    ordered by their keys' second half, then the first. For most datasets both halves hash
    the whole row, so this is a shuffle. Where the first half hashes a repeated text (a
    repeated text), the rows sharing that text land in one row group, where dictionary
    encoding stores the text once, and lie spread over it, not side by side.

    Args:
        keys: the rows' ``binary(16)`` keys (an array or chunked array).
        low, high: the shard's range of the keys' first 64 bits (``high`` up to ``2**64``).
        row_groups: row groups to cut the range into (at least 1).
    Returns:
        The rows' positions in writing order, and the row groups' lengths (empty ones left out).
    """
    first, second = key_halves(keys)
    if row_groups > 1:
        step = -(-(high - low) // row_groups)
        group = ((first - np.uint64(low)) // np.uint64(step)).astype(np.int64)
    else:
        group = np.zeros(len(keys), np.int64)
    order = np.lexsort((first, second, group))
    lengths = np.bincount(group, minlength=row_groups)
    return pa.array(order, pa.int64()), [int(n) for n in lengths if n]


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


def _key_bound(numerator: int, denominator: int) -> bytes | None:
    """The 16-byte key at ``numerator / denominator`` of the key space (None at the end)."""
    if numerator >= denominator:
        return None
    return (numerator * KEY_SPACE // denominator).to_bytes(8, "big") + bytes(KEY_BYTES - 8)


def plan_tasks(runs: list[dict], config: ShardingConfig, pool_below: int, pool_name: str):
    """The shard plan and, per shard, the run row groups it must read."""
    stats: dict[str, list[int]] = {}
    for run in runs:
        for subset, _first, _last, rows, size in run["row_groups"]:
            acc = stats.setdefault(subset, [0, 0])
            acc[0] += rows
            acc[1] += size
    plan = plan_shards(((s, tuple(v)) for s, v in stats.items()), config.target_shard_bytes,
                       pool_below, pool_name)
    tasks = []
    for group, (offset, count) in plan["groups"].items():
        for j in range(count):
            low, high = _key_bound(j, count), _key_bound(j + 1, count)
            # A row group wholly inside the range is taken whole, without searching its keys.
            reads = sorted(
                (run["path"], index, first >= low and (high is None or last < high))
                for run in runs
                for index, (subset, first, last, _rows, _size) in enumerate(run["row_groups"])
                if plan["subset_group"][subset] == group
                and last >= low and (high is None or first < high))
            tasks.append({"shard": offset + j, "group": group, "low": low, "high": high, "reads": reads})
    return plan, tasks


# -- shard formats --------------------------------------------------------------------------

# Dictionary encoding and statistics only where they pay: most texts are distinct (a
# dictionary is built, then abandoned) and their min/max say nothing; measured 30% faster
# writing of MS MARCO shards for the same size. The dictionary columns are those the row
# schema marks (dataset, subset, source_file, licence, author).
PARQUET_OPTIONS = {"use_dictionary": list(dictionary_columns()),
                   "write_statistics": ["dataset", "subset", "source_file", "record_id", "licence"]}


def parquet_options(repeated_texts=(), row_group_bytes: int = 64 * MiB) -> dict:
    """``pyarrow.parquet`` writer options of a dataset's shards.

    Args:
        repeated_texts: text columns whose values repeat across many rows (the dataset's
            ``repeated_texts``): dictionary-encoded too, with a dictionary page as large
            as a row group, so that a text repeated in a row group is stored once there.
            Measured on MS MARCO's shards at 4x benchmark input (each query and relevant
            passage in 35 rows): 334 -> 173 MB and 2.8 -> 1.6 s of writing.
        row_group_bytes: text bytes per row group (bounds the dictionary page).
    """
    if not repeated_texts:
        return dict(PARQUET_OPTIONS)
    return {**PARQUET_OPTIONS, "use_dictionary": PARQUET_OPTIONS["use_dictionary"] + list(repeated_texts),
            "dictionary_pagesize_limit": row_group_bytes}


class ParquetShards:
    """Shards of corpus rows as Parquet, in the schema of ``schemas/corpus_row.json``.

    Args:
        config: the sharding configuration (codec, row group size).
        repeated_texts: non-nullable text columns dictionary-encoded as well (see
            :func:`parquet_options`) and stored once per repeat in the spilled runs (see
            :func:`elide_repeats`).
    """

    ext = "parquet"

    def __init__(self, config: ShardingConfig, repeated_texts: tuple[str, ...] = ()):
        schema = self.schema()
        nullable = [name for name in repeated_texts if schema.field(name).nullable]
        if nullable:
            raise ValueError(f"repeated texts must be non-nullable columns: {nullable}")
        self.config = config
        self.repeated_texts = tuple(repeated_texts)
        # Dictionary-encoded in the spilled runs (see dictionary_encoded).
        self.few_values = dictionary_columns()
        self.options = parquet_options(repeated_texts, config.row_group_bytes)

    @staticmethod
    def schema() -> pa.Schema:
        return row_arrow_schema()

    def row_groups(self, table: pa.Table) -> int:
        """Row groups of a shard: one per ``row_group_bytes`` of its text."""
        size = sum(text_bytes(table[name]) for name in ("anchor", "positive", "negative"))
        return max(1, math.ceil((size + ROW_OVERHEAD_BYTES * table.num_rows) / self.config.row_group_bytes))

    def write(self, row_groups: Iterable[pa.Table], schema: pa.Schema, stream) -> None:
        """Write the tables of ``row_groups`` (of ``schema``) to ``stream``, one row group each."""
        with pq.ParquetWriter(stream, schema, compression=self.config.compression, **self.options) as writer:
            for table in row_groups:
                writer.write_table(table, row_group_size=max(1, table.num_rows))

    @staticmethod
    def summarize(table: pa.Table) -> dict:
        return {"subsets": _value_counts(table, "subset")}


class JsonLinesGzipShards:
    """Shards of rejected records as gzip-compressed JSON lines (mtime fixed at 0, so
    identical content gives identical bytes)."""

    ext = "jsonl.gz"
    repeated_texts = ()
    few_values = ("dataset", "reason", "source_file")

    @staticmethod
    def schema() -> pa.Schema:
        doc = load_schema_document("rejected_record")
        return pa.schema([pa.field(f["name"], pa.string()) for f in doc["fields"]])

    @staticmethod
    def row_groups(table: pa.Table) -> int:
        return 1

    def write(self, row_groups: Iterable[pa.Table], schema: pa.Schema, stream) -> None:
        # No file name in the header (the temporary name would make the bytes differ).
        # Level 1: dead letters are written on every run and read rarely; measured on
        # 18 MB of StackExchange rejects, 0.08 s against 0.40 s at level 6, 25% larger.
        with gzip.GzipFile(filename="", fileobj=stream, mode="wb", mtime=0, compresslevel=1) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            # A few thousand records at a time as Python objects, not the whole shard.
            for batch in (b for table in row_groups for b in table.to_batches(max_chunksize=4096)):
                for record in batch.to_pylist():
                    text.write(json.dumps(record, ensure_ascii=False, sort_keys=True))
                    text.write("\n")
            text.flush()
            text.detach()

    @staticmethod
    def summarize(table: pa.Table) -> dict:
        return {"subsets": {}, "reasons": _value_counts(table, "reason")}


def _value_counts(table: pa.Table, column: str) -> dict:
    if table.num_rows == 0:
        return {}
    counts = pc.value_counts(table[column]).to_pylist()
    return dict(sorted((item["values"], item["counts"]) for item in counts))

