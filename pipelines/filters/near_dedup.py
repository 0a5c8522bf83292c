"""Near-duplicate anchors within a dataset (``--dedup near``), found by MinHash LSH.

The unit is a distinct anchor: the rows whose anchors have the same match form
(:mod:`pipelines.corpus.matching`) are kept or dropped together (MS MARCO and WikiAnswers
repeat anchors by design). Two anchors are near-duplicates when the Jaccard similarity
of their shingles, the words and the pairs of adjacent words of their match forms, is
at least ``threshold`` (0.8), as estimated by 128 MinHash values of each (the agreeing
share). Candidates are the anchors sharing one of 16 bands of 8 values.

The steps, all of them runner-independent and deterministic:

1. **Anchors** (a :class:`~pipelines.engine.HashJoin` of the rows by the anchor's key,
   ``text_key`` of its match form): each task sees every row of its anchors, keeps one
   unit per anchor with the smallest (source file, record id) of its rows, and computes
   its MinHash (vectorised, :func:`signatures`) and band keys. Anchors whose key two
   different match forms share (a hash collision) are left out: never dropped.
2. **Buckets**: the band keys, as Arrow tables cut by hash range, meet in Beam's
   ``GroupByKey``; the anchors sharing a bucket become candidate pairs (every pair in a
   bucket of up to ``MAX_BUCKET``, else each member with the bucket's first, so that a
   template shared by thousands of anchors costs a line of pairs, not a square).
3. **Verification** (two joins): each pair gets the signatures of both its anchors, and
   is kept when their estimated similarity reaches the threshold.
4. **Keepers** (one task, over the verified pairs only): anchors in the order of their
   smallest (source file, record id); an anchor is kept unless a kept anchor before it is
   its near-duplicate, and then it is dropped as a duplicate of the first such one. So
   the kept row a reject names is always kept, and at the similarity it states.
5. **Drop** (a join of the rows with the dropped anchors, reusing step 1's spilled rows):
   every row of a dropped anchor is a rejected record ``duplicate``, counted as a row
   dropped and in the Beam counter ``dedup.<dataset>`` ``near``.
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.corpus import accounting
from pipelines.corpus.rejects import REJECTED
from pipelines.corpus.schema import row_arrow_schema
from pipelines.engine import GatherTables, HashJoin, as_tables, tables
from pipelines.filters.dedup import (
    KEY,
    DedupOutput,
    dedup_counter,
    duplicate_reject,
    fast_match_forms,
    keyed_schema,
    mix64,
    text_keys,
    with_key,
)

PERMUTATIONS, BANDS = 128, 16
ROWS_PER_BAND = PERMUTATIONS // BANDS
THRESHOLD = 0.8
MAX_BUCKET = 32
SEED = 1
UNIT = "unit"
UNITS = pa.schema([(UNIT, pa.int64()), ("signature", pa.binary(4 * PERMUTATIONS)),
                   ("source_file", pa.string()), ("record_id", pa.string())])
BUCKETS = pa.schema([("band", pa.int64()), (UNIT, pa.int64())])
ENDS = pa.schema([("end", pa.int64()), ("a", pa.int64()), ("b", pa.int64())])
HALVES = pa.schema([("pair", pa.int64()), ("a", pa.int64()), ("b", pa.int64()), ("is_a", pa.bool_()),
                    ("signature", pa.binary(4 * PERMUTATIONS)), ("source_file", pa.string()),
                    ("record_id", pa.string())])
EDGES = pa.schema([("a", pa.int64()), ("b", pa.int64()), ("similarity", pa.float64()),
                   ("a_source_file", pa.string()), ("a_record_id", pa.string()),
                   ("b_source_file", pa.string()), ("b_record_id", pa.string())])
DROPPED = pa.schema([(KEY, pa.int64()), ("kept_source_file", pa.string()), ("kept_record_id", pa.string()),
                     ("similarity", pa.float64())])
_U64 = np.uint64


def anchor_keys(table: pa.Table) -> np.ndarray:
    """``text_key`` of every row's anchor match form: the key of its unit."""
    return text_keys(fast_match_forms(table["anchor"]))


def shingles(forms: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The shingles of every match form, as 32-bit hashes: its words (XXH3 of each) and
    its pairs of adjacent words (the two words' hashes mixed in order).

    Returns:
        ``(hashes, offsets)``: form ``i``'s shingles are ``hashes[offsets[i]:offsets[i + 1]]``
        (none for an empty form).
    """
    words = pc.split_pattern(pc.if_else(pc.equal(forms, ""), pa.scalar(None, pa.string()), forms), " ")
    counts = pc.fill_null(pc.list_value_length(words), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(words)
    encoded = pc.dictionary_encode(flat)  # a word is hashed once per task
    word_hashes = text_keys(encoded.dictionary).view(_U64)[encoded.indices.to_numpy(zero_copy_only=False)] \
        if len(flat) else np.zeros(0, _U64)
    pair_counts = np.maximum(counts - 1, 0)
    starts = np.concatenate(([0], np.cumsum(counts)))
    # A pair starts at every word but the last of its form.
    is_first = np.ones(len(word_hashes), bool)
    is_first[starts[1:][counts > 0] - 1] = False
    left = np.flatnonzero(is_first)
    with np.errstate(over="ignore"):
        pair_hashes = mix64(word_hashes[left] * _U64(0x9E3779B97F4A7C15) + word_hashes[left + 1]) \
            if len(left) else np.zeros(0, _U64)
    # Each form's words, then its pairs: interleaved by form through a stable sort.
    owner = np.concatenate((np.repeat(np.arange(len(counts)), counts), np.repeat(np.arange(len(counts)), pair_counts)))
    order = np.argsort(owner, kind="stable")
    hashes = np.concatenate((word_hashes, pair_hashes))[order].astype(np.uint32)
    offsets = np.concatenate(([0], np.cumsum(counts + pair_counts)))
    return hashes, offsets


def permutations(count: int = PERMUTATIONS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` of datasketch's "affine32" MinHash with this seed (``h -> a*h + b``
    mod 2**32, ``a`` odd), drawn the way datasketch 2.0 draws them."""
    generator = np.random.RandomState(seed)
    a = generator.randint(0, 1 << 31, count, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = generator.randint(0, 1 << 32, count, dtype=np.uint32)
    return a, b


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser, which datasketch applies to every value first."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


def signatures(hashes: np.ndarray, offsets: np.ndarray, chunk: int = 1 << 14) -> np.ndarray:
    """The MinHash of every set of 32-bit values (``hashes[offsets[i]:offsets[i + 1]]``),
    ``PERMUTATIONS`` uint32 each: the same values as ``datasketch.MinHash(num_perm=128,
    seed=1, hashfunc=<the value itself>)`` after ``update_batch`` of the set, computed for
    all sets at once (a set without values has all ``2**32 - 1``)."""
    a, b = permutations()
    count = len(offsets) - 1
    out = np.full((count, PERMUTATIONS), np.iinfo(np.uint32).max, np.uint32)
    filled = np.flatnonzero(np.diff(offsets) > 0)
    ends = offsets[filled + 1]
    mixed = _fmix32(hashes.astype(np.uint32))
    # Sets in groups of about ``chunk`` values, the permuted values of a group at once.
    position = 0
    while position < len(filled):
        end = max(position + 1, int(np.searchsorted(ends, offsets[filled[position]] + chunk, "right")))
        group = filled[position:end]
        low, high = offsets[group[0]], offsets[group[-1] + 1]
        # Permutation by row: the reduction then runs along contiguous memory (3x faster).
        permuted = np.multiply.outer(a, mixed[low:high])
        permuted += b[:, None]
        out[group] = np.minimum.reduceat(permuted, offsets[group] - low, axis=1).T
        position = end
    return out


def band_keys(signature: np.ndarray) -> np.ndarray:
    """Per anchor and band, an int64 key of the band's values and its number."""
    count = len(signature)
    keys = np.empty((count, BANDS), np.int64)
    values = np.ascontiguousarray(signature).view(_U64)  # two values in each
    step = ROWS_PER_BAND // 2
    with np.errstate(over="ignore"):
        for band in range(BANDS):
            h = np.full(count, band, _U64)
            for value in values[:, band * step:(band + 1) * step].T:
                h = mix64(h * _U64(0x9E3779B97F4A7C15) + value)
            keys[:, band] = h.view(np.int64)
    return keys


def anchor_units(sides: dict):
    """Step 1, one task: the rows of its anchors -> a units table (one per anchor: key,
    signature, smallest source file and record id) and a buckets table (band key, unit)."""
    rows = sides["rows"].select([KEY, "anchor", "source_file", "record_id"])
    if rows.num_rows == 0:
        return
    forms = fast_match_forms(rows["anchor"])
    rows = pa.table([rows[KEY], forms, rows["source_file"], rows["record_id"]],
                    names=[KEY, "form", "source_file", "record_id"])
    rows = rows.take(pc.sort_indices(rows, [(KEY, "ascending"), ("form", "ascending"),
                                            ("source_file", "ascending"), ("record_id", "ascending")]))
    keys = rows[KEY].to_numpy()
    form = rows["form"].combine_chunks()
    new_key = np.ones(len(keys), bool)
    new_key[1:] = keys[1:] != keys[:-1]
    new_form = new_key.copy()
    if len(keys) > 1:
        new_form[1:] |= ~pc.equal(form.slice(1), form.slice(0, len(keys) - 1)).to_numpy(zero_copy_only=False)
    # A key with two forms is a collision: its anchors are left out (kept).
    forms_of_key = np.add.reduceat(new_form.astype(np.int64), np.flatnonzero(new_key))
    single = np.repeat(forms_of_key == 1, np.diff(np.append(np.flatnonzero(new_key), len(keys))))
    units = rows.filter(pa.array(new_key & single & pc.not_equal(form, "").to_numpy(zero_copy_only=False)))
    if units.num_rows == 0:
        return
    signature = signatures(*shingles(units["form"].combine_chunks()))
    yield pa.table([units[KEY], _signature_column(signature), units["source_file"], units["record_id"]],
                   schema=UNITS)
    bands = band_keys(signature)
    yield pa.table([pa.array(bands.ravel()), pa.array(np.repeat(units[KEY].to_numpy(), BANDS))], schema=BUCKETS)


def cut_buckets(table: pa.Table, parts: int):
    """``(part, rows)`` of a buckets table cut into ``parts`` ranges of the band key."""
    part = (table["band"].to_numpy().view(_U64) >> _U64(32)) * _U64(parts) >> _U64(32)
    for index in np.unique(part).tolist():
        yield int(index), table.filter(pa.array(part == index))


def candidate_ends(item):
    """Step 2, one group of buckets: ``(part, tables)`` -> the candidate pairs ``a < b`` as
    two rows each, one per end (``end`` is the unit the row is joined on)."""
    _part, parts = item
    table = pa.concat_tables(list(parts))
    band, unit = table["band"].to_numpy(), table[UNIT].to_numpy()
    order = np.lexsort((unit, band))
    band, unit = band[order], unit[order]
    starts = np.flatnonzero(np.concatenate(([True], band[1:] != band[:-1])))
    sizes = np.diff(np.append(starts, len(band)))
    pairs = [np.stack([unit[starts[sizes == 2]], unit[starts[sizes == 2] + 1]], axis=1)]  # most buckets
    for start, size in zip(starts[sizes > 2].tolist(), sizes[sizes > 2].tolist()):
        members = np.unique(unit[start:start + size])
        if len(members) > MAX_BUCKET:
            pairs.append(np.stack([np.repeat(members[0], len(members) - 1), members[1:]], axis=1))
        else:
            first, second = np.triu_indices(len(members), 1)
            pairs.append(np.stack([members[first], members[second]], axis=1))
    pairs = np.unique(np.concatenate(pairs), axis=0)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    if not len(pairs):
        return
    a, b = pairs[:, 0], pairs[:, 1]
    yield pa.table([np.concatenate((a, b)), np.concatenate((a, a)), np.concatenate((b, b))], schema=ENDS)


def pair_keys(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """An int64 key of each pair ``(a, b)``, which both its ends' rows share."""
    with np.errstate(over="ignore"):
        return mix64(mix64(a.view(_U64)) ^ b.view(_U64)).view(np.int64)


def attach_signatures(sides: dict):
    """Step 3a, one task: each end of a candidate pair with its unit's signature and
    provenance, keyed by the pair."""
    ends, units = sides["ends"], sides["units"]
    if ends.num_rows == 0 or units.num_rows == 0:
        return
    ends = ends.group_by(["end", "a", "b"], use_threads=False).aggregate([])
    joined = ends.join(units, keys="end", right_keys=UNIT, join_type="inner", use_threads=False)
    a, b = joined["a"].to_numpy(), joined["b"].to_numpy()
    yield pa.table([pair_keys(a, b), a, b, pc.equal(joined["end"], joined["a"]), joined["signature"],
                    joined["source_file"], joined["record_id"]], schema=HALVES)


def _signature_values(column) -> np.ndarray:
    """A signature column as a ``(rows, PERMUTATIONS)`` uint32 array."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    width = 4 * PERMUTATIONS
    data = np.frombuffer(column.buffers()[1], np.uint8)[column.offset * width:(column.offset + len(column)) * width]
    return data.view(np.uint32).reshape(len(column), PERMUTATIONS)


def _signature_column(signature: np.ndarray) -> pa.Array:
    rows = len(signature)
    return pa.Array.from_buffers(pa.binary(4 * PERMUTATIONS), rows,
                                 [None, pa.py_buffer(np.ascontiguousarray(signature).tobytes())])


class VerifyPairs:
    """Step 3b, one task: both ends of each candidate pair -> the pairs whose signatures
    agree on at least ``threshold`` of their values, with their ends' provenance."""

    def __init__(self, threshold: float):
        self.threshold = threshold

    def __call__(self, sides: dict):
        halves = sides["halves"]
        if halves.num_rows == 0:
            return
        halves = halves.take(pc.sort_indices(halves, [("a", "ascending"), ("b", "ascending"),
                                                      ("is_a", "descending")]))
        a, b, is_a = (halves[name].to_numpy() for name in ("a", "b", "is_a"))
        complete = np.flatnonzero((a[:-1] == a[1:]) & (b[:-1] == b[1:]) & is_a[:-1] & ~is_a[1:])
        first, second = halves.take(complete), halves.take(complete + 1)
        agree = (_signature_values(first["signature"]) == _signature_values(second["signature"])).mean(axis=1)
        close = pa.array(agree >= self.threshold)
        if not pc.any(close).as_py():
            return
        yield pa.table([first["a"], first["b"], pa.array(agree), first["source_file"], first["record_id"],
                        second["source_file"], second["record_id"]], schema=EDGES).filter(close)


def choose_keepers(edge_tables: list) -> list:
    """Step 4: the verified pairs of the whole dataset -> the dropped anchors, each with
    the kept anchor it duplicates (as that anchor's smallest source file and record id)
    and their estimated similarity, as one table (none when nothing is dropped)."""
    edges = pa.concat_tables([EDGES.empty_table(), *edge_tables])
    if edges.num_rows == 0:
        return []
    nodes = pa.concat_tables([
        edges.select(["a", "a_source_file", "a_record_id"]).rename_columns([UNIT, "source_file", "record_id"]),
        edges.select(["b", "b_source_file", "b_record_id"]).rename_columns([UNIT, "source_file", "record_id"]),
    ]).group_by([UNIT, "source_file", "record_id"], use_threads=False).aggregate([])
    nodes = nodes.take(pc.sort_indices(nodes, [("source_file", "ascending"), ("record_id", "ascending"),
                                               (UNIT, "ascending")]))
    units = nodes[UNIT].to_numpy()  # in the order of their place
    by_unit = np.argsort(units)
    position = by_unit[np.searchsorted(units[by_unit], edges["a"].to_numpy())]
    other = by_unit[np.searchsorted(units[by_unit], edges["b"].to_numpy())]
    similarity = edges["similarity"].to_numpy()
    # Each pair once from its later anchor's side, earlier neighbours in rank order.
    later, earlier = np.maximum(position, other), np.minimum(position, other)
    order = np.lexsort((earlier, later))
    later, earlier, similarity = later[order], earlier[order], similarity[order]
    kept = np.ones(len(units), bool)
    duplicate_of = np.full(len(units), -1, np.int64)
    similar = np.zeros(len(units))
    starts = np.searchsorted(later, np.arange(len(units) + 1))
    for node in range(len(units)):
        for k in range(starts[node], starts[node + 1]):
            if kept[earlier[k]]:
                kept[node], duplicate_of[node], similar[node] = False, earlier[k], similarity[k]
                break
    dropped = np.flatnonzero(~kept)
    keepers = duplicate_of[dropped]
    return [pa.table([pa.array(units[dropped]), nodes["source_file"].take(keepers), nodes["record_id"].take(keepers),
                      pa.array(similar[dropped])], schema=DROPPED)]


class DropRows:
    """Step 5, one task: ``{"rows": rows with their anchor key, "dropped": dropped
    anchors}`` -> the kept rows and a tagged reject per row of a dropped anchor."""

    def __init__(self, dataset: str):
        self.dataset = dataset

    def __call__(self, sides: dict):
        rows, dropped = sides["rows"], sides["dropped"]
        if rows.num_rows == 0:
            return
        where = pc.index_in(rows[KEY], dropped[KEY])
        gone = pc.is_valid(where)
        if not pc.any(gone).as_py():
            yield rows.drop_columns([KEY])
            return
        yield rows.filter(pc.invert(gone)).drop_columns([KEY])
        lost = rows.filter(gone)
        matches = dropped.take(pc.drop_null(where))
        for row, kept in zip(lost.drop_columns([KEY]).to_pylist(), matches.to_pylist()):
            yield duplicate_reject(row, {"dataset": self.dataset, "source_file": kept["kept_source_file"],
                                         "record_id": kept["kept_record_id"]},
                                   f"near duplicate (estimated similarity {kept['similarity']:.2f}) of the anchor")
        accounting.count_row_dropped(self.dataset, lost.num_rows)
        dedup_counter(self.dataset, "near").inc(lost.num_rows)


class DropNearDuplicates(beam.PTransform):
    """Drop the rows of near-duplicate anchors within one dataset (see the module doc).

    Args:
        dataset: the dataset id.
        threshold: the estimated Jaccard similarity of two anchors' shingles from which
            they are near-duplicates (the bands, 16 of 8 values, are chosen for 0.8).
        bucket_parts: hash ranges the band keys are grouped in (elements of the
            ``GroupByKey``).
    Input: a PCollection of the dataset's rows, dicts or Arrow tables in the row schema.
    Returns:
        A :class:`~pipelines.filters.dedup.DedupOutput`: ``.rows``, a PCollection of Arrow
        tables in the row schema, and ``.rejects``.
    """

    def __init__(self, dataset: str, threshold: float = THRESHOLD, bucket_parts: int = 16):
        super().__init__()
        self.dataset = dataset
        self.threshold = threshold
        self.bucket_parts = bucket_parts

    def expand(self, rows):
        schema = row_arrow_schema()
        keyed_rows = keyed_schema(schema)
        keyed = (rows
                 | "Tables" >> tables(beam.ParDo(GatherTables(schema)))
                 | "Key" >> tables(beam.Map(with_key, schema, keys=anchor_keys)))
        anchors = {"rows": keyed} | "Anchors" >> HashJoin(anchor_units, keys={"rows": KEY},
                                                          schemas={"rows": keyed_rows})
        split = anchors.main | "UnitsOrBuckets" >> beam.Partition(
            lambda table, _count: 0 if table.schema.names[0] == UNIT else 1, 2)
        parts = self.bucket_parts
        ends = (as_tables(split[1])
                | "CutBuckets" >> beam.FlatMap(cut_buckets, parts).with_output_types(tuple[int, pa.Table])
                | "GroupBuckets" >> beam.GroupByKey()
                | "Candidates" >> tables(beam.FlatMap(candidate_ends)))
        halves = {"units": as_tables(split[0]), "ends": ends} | "Signatures" >> HashJoin(
            attach_signatures, keys={"units": UNIT, "ends": "end"}, schemas={"units": UNITS, "ends": ENDS})
        edges = {"halves": halves.main} | "Verify" >> HashJoin(
            VerifyPairs(self.threshold), keys={"halves": "pair"}, schemas={"halves": HALVES})
        dropped = (edges.main
                   | "CollectPairs" >> beam.combiners.ToList()
                   | "Keepers" >> tables(beam.FlatMap(choose_keepers)))
        result = {"rows": anchors.spilled["rows"], "dropped": dropped} | "Drop" >> HashJoin(
            DropRows(self.dataset), keys={"rows": KEY, "dropped": KEY},
            schemas={"rows": keyed_rows, "dropped": DROPPED}, spilled=("rows",))
        return DedupOutput(result.main, result[REJECTED])
