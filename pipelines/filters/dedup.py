"""Exact deduplication (``--dedup exact``): one copy of every row whose texts match another's.

Two rows are exact duplicates when the match forms (:mod:`pipelines.corpus.matching`) of
their anchor, positive and negative are all equal, within a dataset or across datasets.
The negative counts: MS MARCO pairs every query and relevant passage with about 35 hard
negatives by design, so anchor and positive alone would drop nearly all of it.

Every row gets a key: the ``text_key`` of the letters and digits of each of its three
texts (:func:`letters_and_digits`, a match form without its spaces; a null negative as
``\\x00``), mixed into one int64. Rows with equal match forms have equal keys. The rows of all
datasets meet in :class:`~pipelines.engine.HashJoin`, one side per dataset: all rows of a
key land in one task, whatever dataset or bundle they came from, and never pass through
Beam one by one. A task keeps the rows whose key is unique there as they are; among the
others, rows are copies only when their match forms are equal (so neither a hash
collision nor two texts differing only in where words break drops anything), and of
copies the smallest by (the dataset's place in :data:`pipelines.corpus.registry.DATASETS`,
source file, record id, the whole row) is kept. That choice depends only on the rows, so
every rerun and runner keeps the same copy.

Match forms are computed here with numpy on the texts' UTF-8 bytes
(:func:`fast_match_forms`, equal to the corpus rule's, which uses a regular expression:
at 20-40 MB/s that alone would have cost more than the whole step may).

Each dropped row is a rejected record ``duplicate`` naming the kept row, counted as a row
dropped by its own dataset, and in the Beam counters ``dedup.<dataset>`` ``exact`` (and
``exact_of:<kept dataset>`` when the kept copy is in another dataset).
"""
from __future__ import annotations

from functools import cache
from itertools import pairwise

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from apache_beam.metrics import Metrics

from pipelines.corpus import accounting, registry
from pipelines.corpus.rejects import REJECTED, count_reject, make_reject
from pipelines.corpus.schema import row_arrow_schema
from pipelines.engine import GatherTables, HashJoin, as_tables, tables, text_key

KEY = "_dedup_key"
TEXTS = ("anchor", "positive", "negative")
NULL_TEXT = "\x00"


def text_keys(strings) -> np.ndarray:
    """``pipelines.engine.text_key`` of every value of a string array without nulls, as
    ``int64``; the XXH3 digests are taken of views of the array's bytes, with no Python
    string made per value."""
    if isinstance(strings, pa.ChunkedArray):
        parts = [text_keys(chunk) for chunk in strings.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)
    if pa.types.is_large_string(strings.type):
        strings = strings.cast(pa.string())
    _validity, offsets, data = strings.buffers()
    bounds = np.frombuffer(offsets, np.int32)[strings.offset:strings.offset + len(strings) + 1].tolist()
    view = memoryview(data) if data is not None else memoryview(b"")
    digest = xxhash.xxh3_64_digest
    digests = b"".join([digest(view[start:end]) for start, end in pairwise(bounds)])
    # Big-endian digests read as signed: text_key's value (its unsigned digest less 2**64).
    return np.frombuffer(digests, ">i8").astype(np.int64)


@cache
def _letter_or_digit() -> np.ndarray:
    """Per Unicode code point, whether the match form keeps it (RE2's ``[\\pL\\pN]``, the
    class :mod:`pipelines.corpus.matching` uses; Python's own tables are of another
    Unicode version). Built once per process from one array of every character."""
    points = np.arange(0x110000, dtype=np.int64)
    points[(points >= 0xD800) & (points < 0xE000)] = 0  # surrogates: not encodable, not kept
    text = points.astype("<u4").tobytes().decode("utf-32-le").encode("utf-8")
    sizes = 1 + (points >= 0x80) + (points >= 0x800) + (points >= 0x10000)
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int32)
    chars = pa.Array.from_buffers(pa.string(), len(points), [None, pa.py_buffer(offsets), pa.py_buffer(text)])
    return pc.match_substring_regex(chars, r"^[\pL\pN]$").to_numpy(zero_copy_only=False)


def letters_and_digits(texts) -> pa.Array:
    """The letters and digits of every text, lower-cased (nulls stay null): its match form
    without the spaces."""
    return fast_match_forms(texts, spaced=False)


def fast_match_forms(texts, *, spaced: bool = True) -> pa.Array:
    """:func:`pipelines.corpus.matching.match_forms` of a string array (nulls stay null),
    computed with numpy on the UTF-8 bytes: a regular expression reads 20-40 MB/s, this
    several times that. ``spaced=False`` leaves out the spaces between words.
    """
    lowered = pc.utf8_lower(texts)
    if isinstance(lowered, pa.ChunkedArray):
        lowered = lowered.combine_chunks()
    if pa.types.is_large_string(lowered.type):
        lowered = lowered.cast(pa.string())
    _validity, offsets, data = lowered.buffers()
    bounds = np.frombuffer(offsets, np.int32)[lowered.offset:lowered.offset + len(lowered) + 1]
    first, last = (int(bounds[0]), int(bounds[-1])) if len(bounds) else (0, 0)
    text = np.frombuffer(data, np.uint8)[first:last] if data is not None else np.zeros(0, np.uint8)
    keep = ((text - np.uint8(97)) < 26) | ((text - np.uint8(48)) < 10) | (text >= 0x80)
    _drop_other_characters(text, keep)
    # Each row's new start: the bytes kept before it, counted from the mask packed eight to
    # a byte (a cumulative sum over every byte costs several times more).
    bits = np.packbits(keep, bitorder="little")
    per_byte = np.concatenate(([0], np.cumsum(_POPCOUNT[bits], dtype=np.int64)))
    starts = (bounds - first).astype(np.int64)
    below = np.append(bits, np.uint8(0))[starts >> 3] & ((1 << (starts & 7)) - 1)
    kept_before = per_byte[starts >> 3] + _POPCOUNT[below]
    mask = pa.Array.from_buffers(pa.bool_(), len(keep), [None, pa.py_buffer(bits)])
    kept = pa.array(text, pa.uint8()).filter(mask)
    if spaced:
        kept, kept_before = _with_spaces(np.flatnonzero(keep), kept.to_numpy(zero_copy_only=False), kept_before)
    else:
        kept = kept.buffers()[1]
    validity = None if lowered.null_count == 0 else pa.py_buffer(
        np.packbits(lowered.is_valid().to_numpy(zero_copy_only=False), bitorder="little"))
    return pa.Array.from_buffers(pa.string(), len(lowered),
                                 [validity, pa.py_buffer(kept_before.astype(np.int32)), kept],
                                 null_count=lowered.null_count)


def _with_spaces(positions: np.ndarray, kept: np.ndarray, row_starts: np.ndarray):
    """The kept bytes with a space wherever something was dropped between two of them in
    one row, and the rows' new starts.

    Args:
        positions: where each kept byte was in the text.
        kept: the kept bytes.
        row_starts: per row (and one past the last), the index of its first kept byte.
    """
    gap = np.zeros(len(kept), bool)
    gap[1:] = positions[1:] - positions[:-1] > 1
    gap[row_starts[:-1][row_starts[:-1] < len(kept)]] = False  # no space at a row's start
    spaces_before = np.concatenate(([0], np.cumsum(gap)))
    out = np.full(len(kept) + int(spaces_before[-1]), ord(" "), np.uint8)
    out[np.arange(len(kept)) + spaces_before[1:]] = kept
    return pa.py_buffer(out), row_starts + spaces_before[row_starts]


_POPCOUNT = np.array([n.bit_count() for n in range(256)], np.int64)


def _drop_other_characters(text: np.ndarray, keep: np.ndarray) -> None:
    """Clear ``keep`` for the bytes of every character beyond ASCII that is not a letter
    or digit (punctuation, symbols, marks, spaces): decoded from its lead byte."""
    leads = np.flatnonzero(text >= 0xC0)
    if not len(leads):
        return
    lead = text[leads].astype(np.int64)
    size = 2 + (lead >= 0xE0) + (lead >= 0xF0)
    point = np.where(size == 2, lead & 0x1F, np.where(size == 3, lead & 0x0F, lead & 0x07))
    for k in range(1, 4):
        more = size > k
        point = np.where(more, (point << 6) | (text[np.minimum(leads + k, len(text) - 1)] & 0x3F), point)
    other = ~_letter_or_digit()[point]
    for k in range(4):
        at = leads[other & (size > k)] + k
        keep[at] = False


def match_columns(table: pa.Table) -> list[pa.Array]:
    """The match forms of a table's anchor, positive and negative; a null negative (a pair
    dataset) as ``\\x00``, which no match form holds."""
    forms = [fast_match_forms(table[name]) for name in TEXTS]
    forms[2] = pc.fill_null(forms[2], NULL_TEXT)
    return forms


def exact_keys(table: pa.Table) -> np.ndarray:
    """The key copies share: the three :func:`text_column_keys` of anchor, positive and
    negative, mixed in that order (:func:`mix64`). Rows with equal match forms have equal
    keys; rows with equal keys are compared by their match forms (:func:`keeper_order`)."""
    key = np.zeros(table.num_rows, np.uint64)
    with np.errstate(over="ignore"):
        for name in TEXTS:
            key = mix64(key * np.uint64(_GOLDEN) + text_column_keys(table[name]).view(np.uint64))
    return key.view(np.int64)


def text_column_keys(column) -> np.ndarray:
    """``text_key`` of the letters and digits of every text of a column (a null as
    ``\\x00``), computed once per run of equal texts in a row: MS MARCO's rows of one
    query and relevant passage, PAQ's of one passage, lie side by side."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    count = len(column)
    if column.null_count == count:
        return np.full(count, text_key(NULL_TEXT), np.int64)
    run = None
    if count > 1:
        same = pc.fill_null(pc.equal(column.slice(1), column.slice(0, count - 1)), False)
        if pc.sum(same).as_py() * 4 > count:  # worth it from a quarter of the rows on
            first = np.concatenate(([True], ~same.to_numpy(zero_copy_only=False)))
            run = np.cumsum(first) - 1
            column = column.filter(pa.array(first))
    keys = text_keys(pc.fill_null(letters_and_digits(column), NULL_TEXT))
    return keys if run is None else keys[run]


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser of 64-bit values: a fixed, well-spread bijection."""
    with np.errstate(over="ignore"):
        x = values.astype(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


_GOLDEN = 0x9E3779B97F4A7C15


def keyed_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the int64 key column the dedup joins on."""
    return schema.append(pa.field(KEY, pa.int64(), nullable=False))


def with_key(table: pa.Table, schema: pa.Schema, keys=exact_keys) -> pa.Table:
    """``table`` in the row schema, with its key column (``keys(table)``) appended."""
    table = table.select(schema.names).cast(schema)
    return table.append_column(keyed_schema(schema).field(KEY), pa.array(keys(table), pa.int64()))


def dataset_ranks(datasets) -> np.ndarray:
    """Each dataset's place in the registry (a dataset not registered after them all)."""
    order = {dataset_id: n for n, dataset_id in enumerate(registry.dataset_ids())}
    return np.array([order.get(d, len(order)) for d in datasets], np.int64)


def repeated_keys(keys: np.ndarray) -> np.ndarray:
    """Which rows share their key with another row."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    shared = np.zeros(len(keys), bool)
    shared[1:] |= same
    shared[:-1] |= same
    repeated = np.zeros(len(keys), bool)
    repeated[order] = shared
    return repeated


def keeper_order(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """An order of the rows of ``table`` (with its key column) in which copies lie
    together, the one to keep first, and for every row in that order the position of its
    kept copy.

    Copies have equal keys and equal match forms; the kept one is the smallest by
    (registry place of its dataset, source file, record id, the whole row).
    """
    forms = match_columns(table)
    rank = pa.array(dataset_ranks(table["dataset"].to_pylist()), pa.int64())
    columns = [name for name in table.schema.names if name != KEY]
    order_by = pa.table([table[KEY], *forms, rank] + [table[name] for name in columns],
                        names=[KEY, "_a", "_p", "_n", "_rank"] + [f"_row_{name}" for name in columns])
    leading = [KEY, "_a", "_p", "_n", "_rank", "_row_source_file", "_row_record_id"]
    sort_keys = [(name, "ascending", "at_end")
                 for name in leading + [n for n in order_by.schema.names if n not in leading]]
    order = pc.sort_indices(order_by, sort_keys=sort_keys)
    ordered = order_by.take(order)
    count = table.num_rows
    first = np.ones(count, bool)
    if count > 1:
        same = ordered[KEY].to_numpy()[1:] == ordered[KEY].to_numpy()[:-1]
        for name in ("_a", "_p", "_n"):
            column = ordered[name].combine_chunks()
            same &= pc.equal(column.slice(1), column.slice(0, count - 1)).to_numpy(zero_copy_only=False)
        first[1:] = ~same
    keeper = np.maximum.accumulate(np.where(first, np.arange(count), 0))
    return order.to_numpy(), keeper


def drop_exact_duplicates(sides: dict):
    """:class:`~pipelines.engine.HashJoin` function of one task: ``{dataset: its rows with
    the key column}`` -> the kept rows (a table per dataset, key column dropped) and a
    tagged reject per dropped row."""
    names = sorted(sides)
    table = pa.concat_tables([sides[name] for name in names])
    if table.num_rows == 0:
        return
    repeated = repeated_keys(table[KEY].to_numpy())
    kept = ~repeated
    if repeated.any():
        among = np.flatnonzero(repeated)
        copies = table.take(among)
        order, keeper = keeper_order(copies)
        is_keeper = keeper == np.arange(len(keeper))
        kept[among[order[is_keeper]]] = True
        yield from _rejects(copies.take(order).drop_columns([KEY]), keeper, ~is_keeper)
    # Each side holds one dataset's rows: its kept rows are its output (uncopied when it
    # lost none, as most do).
    start = 0
    for name in names:
        rows, side_kept = sides[name].num_rows, kept[start:start + sides[name].num_rows]
        if rows and side_kept.all():
            yield sides[name].drop_columns([KEY])
        elif side_kept.any():
            yield sides[name].filter(pa.array(side_kept)).drop_columns([KEY])
        start += rows


@cache
def dedup_counter(dataset: str, name: str):
    """Beam counter ``dedup.<dataset>`` ``name``: rows the dedup dropped from ``dataset``."""
    return Metrics.counter(f"dedup.{dataset}", name)


def _rejects(ordered: pa.Table, keeper: np.ndarray, dropped: np.ndarray):
    """A counted reject per dropped row of ``ordered``, naming its kept copy."""
    rows = ordered.filter(pa.array(dropped)).to_pylist()
    kept_rows = ordered.select(["dataset", "source_file", "record_id"]).take(keeper[dropped]).to_pylist()
    for row, kept in zip(rows, kept_rows):
        yield duplicate_reject(row, kept, "exact duplicate")
        dataset = row["dataset"]
        accounting.count_row_dropped(dataset)
        dedup_counter(dataset, "exact").inc()
        if kept["dataset"] != dataset:
            dedup_counter(dataset, f"exact_of:{kept['dataset']}").inc()


def duplicate_reject(row: dict, kept: dict, what: str):
    """The tagged, counted reject ``duplicate`` of a dropped ``row``, whose ``detail``
    names the ``kept`` row (its dataset, source file and record id)."""
    reject = make_reject(
        row["dataset"], "duplicate", source_file=row.get("source_file") or "?",
        record_id=row.get("record_id") or "",
        detail=f"{what} of {kept['dataset']} {kept['source_file']} record {kept['record_id']}",
        excerpt=row)
    count_reject(reject)
    return beam.pvalue.TaggedOutput(REJECTED, reject)


class DedupOutput:
    """What a dedup step gives: ``.rows`` (the rows kept) and ``.rejects`` (a rejected
    record per row dropped)."""

    def __init__(self, rows, rejects):
        self.rows = rows
        self.rejects = rejects


class DropDuplicates(beam.PTransform):
    """Drop exact duplicates within and across datasets (see the module doc).

    Args:
        datasets: the ids of the datasets given (the keys of the input).
        task_bytes: Arrow bytes of one join task (see :class:`~pipelines.engine.HashJoin`).
    Input: ``{dataset id: PCollection of rows}``, rows as dicts or Arrow tables in the row
        schema (:func:`pipelines.corpus.schema.row_arrow_schema`), normalised.
    Returns:
        A :class:`DedupOutput`: ``.rows``, per dataset id a PCollection of Arrow tables in
        the row schema (each table holds rows of that dataset only), and ``.rejects``.
    """

    def __init__(self, datasets, task_bytes: int | None = None):
        super().__init__()
        self.datasets = list(datasets)
        self.task_bytes = task_bytes

    def expand(self, rows_by_dataset):
        schema = row_arrow_schema()
        # One join side per dataset: each is spilled where it is produced (a Flatten of
        # the rows themselves would be held whole in memory by a local runner).
        keyed = {
            dataset: rows_by_dataset[dataset]
            | f"Tables{dataset}" >> tables(beam.ParDo(GatherTables(schema)))
            | f"Key{dataset}" >> tables(beam.Map(with_key, schema))
            for dataset in self.datasets}
        options = {} if self.task_bytes is None else {"task_bytes": self.task_bytes}
        joined = keyed | "Join" >> HashJoin(
            drop_exact_duplicates, keys={dataset: KEY for dataset in self.datasets},
            schemas={dataset: keyed_schema(schema) for dataset in self.datasets}, **options)
        index = {dataset: n for n, dataset in enumerate(self.datasets)}
        parts = joined.main | "ByDataset" >> beam.Partition(
            lambda table, _count: index[table["dataset"][0].as_py()], len(self.datasets))
        return DedupOutput({dataset: as_tables(parts[index[dataset]]) for dataset in self.datasets},
                           joined[REJECTED])
