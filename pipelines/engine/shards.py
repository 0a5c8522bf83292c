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
   (:func:`elide_repeats`), and the columns with a handful of values (its ``few_values``)
   are dictionary-encoded (:func:`dictionary_encoded`). Only the run's description (row
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
   the key's second half (:func:`shard_layout`: a shuffle, in which the rows sharing a
   group text share a row group, where dictionary encoding stores the text once, spread
   over it rather than side by side) and writes them to a
   temporary name that is renamed into place, so a half-written shard is never visible
   under its final name. Every shard of the plan is written, empty ones included, so
   ``-of-NNNNN`` is always complete.
4. **Finalize.** Stale shards of an earlier run with another shard count and the spill
   runs are removed; a summary (plan, per shard rows, bytes, subsets or reasons) is
   returned.

A shard's bytes depend only on the records, never on bundle boundaries or on the order
a runner delivers them in. Memory is bounded by one shard (``target_shard_bytes``).
"""
from __future__ import annotations

import gzip
import io
import json
import math
import posixpath
import uuid
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import xxhash
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindows

from pipelines.engine import files
from pipelines.engine.join import RunFiles, cut_to_fit, read_runs, write_run
from pipelines.corpus.schema import load_schema_document, records_table, row_arrow_schema

MiB = 1 << 20
# Fixed per-row overhead added to the text length when estimating a row's size.
ROW_OVERHEAD_BYTES = 64
KEY = "_key"
KEY_BYTES = 16
# Bytes of a key that hash the group text, when a dataset has one (see row_key).
GROUP_BYTES = 8
_KEY_SPACE = 1 << 64


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
    instead, so that records sharing that text share a key range (see the module doc)."""
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


def _key_halves(keys) -> tuple[np.ndarray, np.ndarray]:
    """The first and second 64 bits of each ``binary(16)`` key (an array or chunked
    array), as ``uint64``; the first is the group hash where a dataset has one."""
    keys = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    if not len(keys):
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    halves = np.frombuffer(keys.buffers()[1], dtype=">u8", count=2 * len(keys),
                           offset=keys.offset * KEY_BYTES).reshape(-1, 2)
    return halves[:, 0].astype(np.uint64), halves[:, 1].astype(np.uint64)


def elide_repeats(table: pa.Table, columns, batch_starts) -> pa.Table:
    """A run's sorted table with every value of ``columns`` that repeats the one of the row
    before it, in the same group and the same run batch, replaced by null.

    Rows sharing a group text lie side by side in a run (their keys share the first
    half), and so do, mostly, the rows that repeat another text with it: MS MARCO's rows
    of one query and relevant passage, PAQ's questions of one passage. Each such text is
    then written and read back once per run batch instead of once per row. A read of a
    run starts at a batch or at a group (shard ranges are ranges of the group hash), so
    the row it starts at always holds its text: :func:`restore_repeats` needs nothing
    from outside what it reads. The values are compared, not their hashes, so different
    texts are never merged.

    Args:
        table: the run's rows sorted by key, with the ``KEY`` column.
        columns: non-nullable text columns to elide (null marks an elided value).
        batch_starts: the first row of each record batch the run is written in.
    """
    rows = table.num_rows
    groups, _second = _key_halves(table[KEY])
    same_group = groups[1:] == groups[:-1]
    starts = np.asarray(list(batch_starts), dtype=np.int64)
    for name in columns:
        index = table.schema.get_field_index(name)
        column = table[name].combine_chunks()
        if rows > 1:
            same = pc.equal(column.slice(1), column.slice(0, rows - 1)).to_numpy(zero_copy_only=False)
            repeat = np.concatenate(([False], same_group & same))
            repeat[starts] = False
            if repeat.any():
                # (replace_with_mask drops the bytes of what it nulls; if_else keeps them)
                column = pc.replace_with_mask(column, pa.array(repeat), pa.nulls(int(repeat.sum()), column.type))
        # Nullable in every run, elided or not, so that reads of several runs concatenate.
        table = table.set_column(index, table.schema.field(name).with_nullable(True), column)
    return table


def restore_repeats(table: pa.Table, columns) -> pa.Table:
    """Rows read from runs with every column of ``columns`` elided by :func:`elide_repeats`
    made whole again: a dictionary array of the values stored, one index per row, so
    that no text is copied here (the shard's ``take`` and ``cast`` copy each once).

    Args:
        table: reads of runs, each starting at a run batch or a group.
        columns: the columns :func:`elide_repeats` was given.
    Raises:
        ValueError: a read starts at an elided value (its text is outside the read).
    """
    for name in columns:
        column = table[name]
        if column.null_count == 0:
            continue
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        indices = np.cumsum(valid, dtype=np.int64) - 1
        if indices[0] < 0:
            raise ValueError(f"a read of runs starts at an elided {name!r} value")
        stored = column.drop_null()
        stored = stored.combine_chunks() if isinstance(stored, pa.ChunkedArray) else stored
        restored = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), stored)
        table = table.set_column(table.schema.get_field_index(name), pa.field(name, restored.type), restored)
    return table


def dictionary_encoded(table: pa.Table, columns) -> pa.Table:
    """``table`` with ``columns`` dictionary-encoded: in a run, a column with a handful of
    values (one dataset, a few files and subsets) then costs an index a row instead of
    its text (the shard's ``cast`` decodes it)."""
    for name in columns:
        field = table.schema.field(name)
        column = pc.dictionary_encode(table[name].combine_chunks())
        table = table.set_column(table.schema.get_field_index(name),
                                 pa.field(name, column.type, nullable=field.nullable), column)
    return table


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
    first, second = _key_halves(keys)
    if row_groups > 1:
        step = -(-(high - low) // row_groups)
        group = ((first - np.uint64(low)) // np.uint64(step)).astype(np.int64)
    else:
        group = np.zeros(len(keys), np.int64)
    order = np.lexsort((first, second, group))
    lengths = np.bincount(group, minlength=row_groups)
    return pa.array(order, pa.int64()), [int(n) for n in lengths if n]


def record_size(record: dict) -> int:
    """Estimated bytes of a record: its text lengths plus a fixed overhead."""
    return ROW_OVERHEAD_BYTES + sum(len(v) for v in record.values() if isinstance(v, str))


def table_size(table: pa.Table) -> int:
    """:func:`record_size` summed over a table of records (UTF-8 bytes for characters)."""
    text = sum(pc.sum(pc.binary_length(table[name])).as_py() or 0
               for name in table.schema.names if pa.types.is_string(table.schema.field(name).type))
    return text + ROW_OVERHEAD_BYTES * table.num_rows


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
    return (numerator * _KEY_SPACE // denominator).to_bytes(8, "big") + bytes(KEY_BYTES - 8)


# -- shard formats --------------------------------------------------------------------------

# Dictionary encoding and statistics only where they pay: most texts are distinct (a
# dictionary is built, then abandoned) and their min/max say nothing; measured 30% faster
# writing of MS MARCO shards for the same size.
PARQUET_OPTIONS = {"use_dictionary": ["dataset", "subset", "source_file"],
                   "write_statistics": ["dataset", "subset", "source_file", "record_id"]}


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
        self.few_values = ("dataset", "subset", "source_file")
        self.options = parquet_options(repeated_texts, config.row_group_bytes)

    @staticmethod
    def schema() -> pa.Schema:
        return row_arrow_schema()

    def row_groups(self, table: pa.Table) -> int:
        """Row groups of a shard: one per ``row_group_bytes`` of its text."""
        size = sum(text_bytes(table[name]) for name in ("anchor", "positive", "negative"))
        return max(1, math.ceil((size + ROW_OVERHEAD_BYTES * table.num_rows) / self.config.row_group_bytes))

    def write(self, table: pa.Table, stream, row_groups: list[int]) -> None:
        """Write ``table`` to ``stream``, a row group per length of ``row_groups``."""
        with pq.ParquetWriter(stream, table.schema, compression=self.config.compression,
                              **self.options) as writer:
            offset = 0
            for length in row_groups or [table.num_rows]:
                writer.write_table(table.slice(offset, length), row_group_size=max(1, length))
                offset += length

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

    def write(self, table: pa.Table, stream, row_groups: list[int]) -> None:
        # No file name in the header (the temporary name would make the bytes differ).
        # Level 1: dead letters are written on every run and read rarely; measured on
        # 18 MB of StackExchange rejects, 0.08 s against 0.40 s at level 6, 25% larger.
        with gzip.GzipFile(filename="", fileobj=stream, mode="wb", mtime=0, compresslevel=1) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            for record in table.to_pylist():
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


# -- step 1: spill sorted runs ----------------------------------------------------------------

# Records buffered as dicts before they are turned into one Arrow table.
RECORDS_PER_TABLE = 4096


class _SpillRuns(beam.DoFn):
    """Buffer records (dicts, or Arrow tables of them), spill them as Arrow runs sorted
    by (subset, key), emit the runs' descriptions."""

    def __init__(self, spill_dir: str, subset_field: str | None, shard_format, config: ShardingConfig):
        self.spill_dir = spill_dir
        self.subset_field = subset_field
        self.format = shard_format
        self.config = config
        repeated = shard_format.repeated_texts
        # The rows sharing the first repeated text share the first half of their keys.
        self.group_field = repeated[0] if repeated else None

    def setup(self):
        self._schema = self.format.schema()

    def start_bundle(self):
        self._records: list[dict] = []
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._bytes = 0

    def process(self, record):
        if isinstance(record, pa.Table):
            yield from self._add_table(record)
            return
        self._records.append(record)
        self._bytes += record_size(record)
        self._rows += 1
        if len(self._records) >= RECORDS_PER_TABLE:
            # Held as Arrow, a buffered record takes its text's size, not a dict's.
            self._tables.append(self._records_table())
        if self._bytes >= self.config.spill_bytes:
            yield self._spill()

    def _add_table(self, record: pa.Table):
        if record.num_rows == 0:
            return
        table = record.select(self._schema.names).cast(self._schema)
        limit = self.config.spill_bytes
        for piece, size in cut_to_fit(table, table_size(table), limit - self._bytes, limit):
            self._tables.append(piece)
            self._bytes += size
            self._rows += piece.num_rows
            if self._bytes >= limit:
                yield self._spill()

    def finish_bundle(self):
        if self._rows:
            yield GlobalWindows.windowed_value(self._spill())

    def _records_table(self) -> pa.Table:
        records, self._records = self._records, []
        return records_table(records, self._schema)

    def _buffered(self) -> pa.Table:
        if self._records:
            self._tables.append(self._records_table())
        tables = self._tables
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _spill(self) -> dict:
        # Combined first, so that the buffered chunks are freed before the sort copies the
        # rows (sorted from the chunks, they stay alive beside the sort's own gathering:
        # PAQ's peak at 4x input 509 -> 525-540 MB).
        table = self._buffered().combine_chunks()
        avg = max(1, self._bytes // self._rows)
        self.start_bundle()
        table = table.append_column(KEY, row_keys(table, self.group_field))
        subset_column = self.subset_field if self.subset_field else None
        order = [(KEY, "ascending")] if subset_column is None else [(subset_column, "ascending"), (KEY, "ascending")]
        # Encoded before the sort, which then moves their indices, not their texts (a
        # sort key is encoded after it: Arrow does not sort by dictionary columns).
        few_values = self.format.few_values
        table = dictionary_encoded(table, [name for name in few_values if name != subset_column])
        table = table.sort_by(order)
        rows_per_group = max(1, self.config.spill_row_group_bytes // avg)
        # Row groups never span two subsets, so a shard reads only its group's.
        subsets, slices = [], []
        for subset, start, length in _subset_slices(table, subset_column):
            for offset in range(start, start + length, rows_per_group):
                subsets.append(subset)
                slices.append((offset, min(rows_per_group, start + length - offset)))
        table = dictionary_encoded(table, [name for name in few_values if name == subset_column])
        if self.format.repeated_texts:
            table = elide_repeats(table, self.format.repeated_texts, [offset for offset, _ in slices])
        path, batches = write_run(self.spill_dir, table, KEY, slices)
        row_groups = [[subset, first, last, chunk.num_rows, avg * chunk.num_rows]
                      for subset, (first, last, chunk) in zip(subsets, batches)]
        return {"path": path, "row_groups": row_groups}


class SpillByDataset(beam.DoFn):
    """Step 1 of :class:`WriteShards` for records of several datasets at once (the rejected
    records of a source): one buffer and spill folder per dataset, runs emitted as
    ``(dataset, run)``. Applied to each PCollection of records where it is produced, so
    that records are never gathered in one PCollection first (which a local runner would
    hold in memory whole).

    Args:
        spill_dirs: per dataset id, its spill folder.
        shard_format, config: as for :class:`WriteShards`.
        field: the record field naming the dataset.
    """

    def __init__(self, spill_dirs: dict[str, str], shard_format, config: ShardingConfig,
                 field: str = "dataset"):
        self.spill_dirs = spill_dirs
        self.format = shard_format
        self.config = config
        self.field = field

    def setup(self):
        self._spills = {}
        for dataset, spill_dir in self.spill_dirs.items():
            spill = _SpillRuns(spill_dir, None, self.format, self.config)
            spill.setup()
            self._spills[dataset] = spill

    def start_bundle(self):
        for spill in self._spills.values():
            spill.start_bundle()

    def process(self, record):
        dataset = record.get(self.field) if isinstance(record, dict) else None
        if dataset not in self._spills:
            raise ValueError(f"record for dataset {dataset!r} that this run does not build")
        for run in self._spills[dataset].process(record):
            yield dataset, run

    def finish_bundle(self):
        for dataset, spill in sorted(self._spills.items()):
            if spill._rows:
                yield GlobalWindows.windowed_value((dataset, spill._spill()))


def _subset_slices(table: pa.Table, subset_column: str | None):
    """``(subset, start, length)`` of each run of equal subsets in a sorted table."""
    if subset_column is None:
        yield "", 0, table.num_rows
        return
    start = 0
    for value, length in _runs(table[subset_column]):
        yield value or "", start, length
        start += length


def _runs(column) -> list[tuple[str, int]]:
    """``(value, length)`` of each run of equal values of a column."""
    encoded = pc.run_end_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    ends = encoded.run_ends.to_pylist()
    values = encoded.values.to_pylist()
    return [(value, end - start) for value, start, end in zip(values, [0] + ends[:-1], ends)]


# -- step 2: plan ------------------------------------------------------------------------------

def _plan_tasks(runs: list[dict], config: ShardingConfig, pool_below: int, pool_name: str):
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
        high = _KEY_SPACE if task["high"] is None else int.from_bytes(task["high"][:GROUP_BYTES], "big")
        order, row_groups = shard_layout(table[KEY], low, high, self.format.row_groups(table))
        table = table.take(order).drop_columns([KEY]).cast(schema)
        path = files.join(self.directory, shard_name(self.prefix, task["shard"], plan["total"],
                                                     self.format.ext))
        size = _write_atomically(path, lambda stream: self.format.write(table, stream, row_groups))
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
        shard_format: :class:`ParquetShards` or :class:`JsonLinesGzipShards`.
        config: :class:`ShardingConfig`.
        subset_field: record field whose value groups shards (``"subset"``), or ``None``.
        pool_below, pool_name: subsets with fewer rows share one group (see
            :func:`plan_shards`).
        spill_dir: folder for the temporary sorted runs, outside ``directory``; its files
            are removed when the shards are written.
        spilled: the input holds the runs' descriptions (from :class:`SpillByDataset`),
            not the records.
    The records sharing the text of the shard format's first ``repeated_texts`` column
    (MS MARCO's query) go to the same shard (see :func:`row_key`).

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
                _SpillRuns(self.spill_dir, self.subset_field, self.format, self.config))
        runs = records | "CollectRuns" >> beam.combiners.ToList()
        planned = runs | "PlanShards" >> beam.Map(
            lambda all_runs: _plan_tasks(sorted(all_runs, key=lambda r: r["path"]), self.config,
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
