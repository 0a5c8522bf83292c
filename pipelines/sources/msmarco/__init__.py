"""MS MARCO passage ranking: (query, relevant passage, hard-negative passage) triplets.

Files (under ``IN/msmarco/``, as published on msmarco.z22.web.core.windows.net and the
Hugging Face hub; each may be plain or gzip/bz2/xz/zstd-compressed, which is sniffed from
the bytes, never taken from the name):

    ``collection.tsv``                   ``pid \\t passage`` (8,841,823 passages), or
    ``collection.tar.gz``                the archive holding ``collection.tsv``
    ``queries.train.tsv``                ``qid \\t query`` (808,731 train queries), or
    ``queries.tar.gz``                   the archive with train, dev and eval queries; only
                                         ``queries.train.tsv`` is read (dev and eval queries
                                         are not candidates and are skipped unread)
    ``qrels.train.tsv``                  TREC qrels ``qid 0 pid 1`` (532,761 judgements)
    ``msmarco-hard-negatives.jsonl.gz``  one JSON object per judged query:
                                         ``{"qid": int, "pos": [pid, ...], "neg": {system:
                                         [pid, ...], ...}}``, up to 50 pids per mining system
    ``qidpidtriples.train.full.2.tsv``   ``qid \\t positive pid \\t negative pid``
                                         (269,919,004 BM25 triples; ``.gz`` as published)
    ``triples.train.small.tsv``          ``query \\t positive text \\t negative text``, or
                                         ``triples.train.small.tar.gz`` holding it

When one kind of file is there twice (``collection.tsv`` beside ``collection.tar.gz``),
the unpacked one is read. ``qrels.dev.tsv``, ``queries.dev.tsv`` and other files are not
candidates and are not read. The companion ``cross-encoder-ms-marco-MiniLM-L-6-v2-scores
.pkl.gz`` (cross-encoder scores used by sentence-transformers to drop false negatives) is
never opened, even when present: it is a Python pickle, and unpickling a downloaded file
can execute arbitrary code. Its role is taken by the qrels check and by spreading the
choice of negatives over the mined lists (see :func:`select_hard_negatives`).

Which negatives (option ``negatives``; the default ``auto`` takes the first one present):
    1. ``hard_negatives``  ``msmarco-hard-negatives.jsonl.gz``: negatives mined by 13
                           retrieval systems, the kind the sentence-transformers MS MARCO
                           training scripts use (the reference file name
                           ``msmarco-query_passage_negative_v2`` points the same way;
                           how it was built is not published);
    2. ``qidpidtriples``   the official BM25 triples;
    3. ``triples_small``   the official text triples (a subset of the BM25 triples with the
                           texts already filled in; no join, collection/queries not read).
Only the chosen input is read, so no triplet is ever produced twice.

Parse: TSV lines are split on TAB (passages never hold TAB or newline); ids must be
integers. Query text is stripped (some queries start with a space). Every passage text,
from ``collection.tsv`` and in ``triples.train.small.tsv``, is repaired with
:func:`repair_mojibake` (the release is UTF-8 that was decoded as Latin-1 and encoded
again). Query text has no such damage and is left as it is.

Qrels: ``qrels.train.tsv`` (optional) names the passages judged relevant for each query.
They are never used as negatives: with the hard-negatives file they leave the candidate
pool (as the line's own ``pos`` do); with ``qidpidtriples`` a kept triple whose negative
is judged relevant is rejected. Positives come from the negatives input itself (``pos``
of the line, second column of the triple), which upstream built from these qrels.

Joins: the id inputs are joined by id, never with dicts. The id files are read as Arrow
tables (:func:`pipelines.engine.read.tsv_tables`) and joined with partitioned hash joins
(:class:`pipelines.engine.join.HashJoin`: every side spilled in runs sorted by the
hash of its id, one task per hash range joining its share with pyarrow): BM25 triples
with the qrels and the query texts by qid (the per-query cap applied there, vectorised),
then the passage text by negative pid and, last, by positive pid (so that the rows of one
query and relevant passage leave one join task together: the sink stores their repeated
texts once per run batch). The hard-negatives lines are
joined with the qrels by a Beam ``CoGroupByKey`` (one element per query) before they
become triplet tables, which then meet the query texts by qid. A text is attached by
position (``index_in`` and ``take``), so the columns already joined are never copied
again. Memory is bounded by a run buffer and one task's share. Big plain files are read in
byte ranges (option ``split_mb``); with several workers, archives and compressed files are
read through by one worker, which cuts them into blocks of whole lines (``split_mb`` each)
that all workers parse (see :class:`pipelines.engine.read.ReadFiles`).

Pair rules (one function each):
    :func:`select_hard_negatives`  which (positive, negative) pids one query of the
                                   hard-negatives file gives
    :func:`selection_key`          the deterministic order used to choose among candidates
    :func:`keep_per_query`         how many BM25 / text triples a query keeps
    :func:`triplet_row`            the row: (query text, positive text, negative text)

Documented count: 17,579,773 triplets (model card). The hard-negatives file has about
532,751 (query, positive) pairs (per-system triplet uploads of its lists on the HF hub
hold at most 26,637,550 = 532,751 x 50 rows; qrels.train has 532,761), so the default of 33 negatives per (query, positive) gives about 532,751 x 33 = 17,580,783
(+0.006%); queries or passages missing from the inputs lower it. With
``qidpidtriples``, 35 triples per query (17.58M / ~500k judged queries) gives about
35 x the number of queries in the file; with ``triples_small`` it is 35 x its queries.

Rejects (dataset ``msmarco_triplets``): ``malformed_line`` (wrong column count or an id
that is not an integer), ``bad_encoding``, ``bad_json``, ``not_an_object``,
``malformed_record`` (a hard-negatives line with missing fields or wrong types),
``no_positive`` (a hard-negatives line whose ``pos`` is empty), ``no_negative`` (no
candidate left after removing the query's positives), ``negative_is_positive`` (a BM25
triple whose negative is judged relevant in the qrels), ``duplicate_query_line`` (a
second hard-negatives line for one qid; the first in the file is used),
``query_missing``, ``positive_missing``, ``negative_missing`` (an id not found in
queries / collection), ``duplicate_query_id`` / ``duplicate_passage_id`` (an id given
twice with different texts: the triplets using it are rejected rather than guessing),
``blank_file`` (a file of blank lines only); and from the core's reader ``empty_file`` (no
byte at all), ``no_member`` (an archive without the expected member) and
``unreadable_file``. Candidates beyond the per-query or per-positive cap are not
rejects: the rule makes them non-candidates (for the triples files the Beam counters
``msmarco/triples_read`` and ``msmarco/triples_kept`` show how many). A triple repeated
verbatim in a triples file is one candidate (the first line stands for it).

Records (:mod:`pipelines.corpus.accounting`): a record is one triplet candidate.
    ``hard_negatives``  each (positive, negative) of a line's candidate pool (its
                        positives times the mined negatives left once the relevant
                        passages are removed); those :func:`select_hard_negatives` does
                        not take are the skip ``beyond_positive_cap``. A line that gives
                        no candidate is one record: ``no_positive``, ``no_negative``,
                        ``duplicate_query_line`` or a parse reject.
    ``qidpidtriples``,  each line of the triples file; those :func:`keep_per_query` does
    ``triples_small``   not keep are the skip ``beyond_query_cap`` (a verbatim repeat of a
                        kept triple is counted there too).
A kept candidate ends as a row or one reject (``negative_is_positive``, ``*_missing``,
``duplicate_*_id``). Lines of collection, queries and qrels are not records, except a
line rejected where it is read, which is one record read and rejected.

Source options (``--source-option msmarco.<key>=<value>``):
    ``negatives``               ``auto`` | ``hard_negatives`` | ``qidpidtriples`` |
                                ``triples_small`` (default ``auto``)
    ``systems``                 mining systems of the hard-negatives file to draw from,
                                comma-separated, or ``all`` (default ``all``)
    ``negatives_per_positive``  negatives per (query, positive) from the hard-negatives
                                file (default 33)
    ``triples_per_query``       triples kept per query from ``qidpidtriples`` or
                                ``triples_small`` (default 35)
    ``seed``                    salt of :func:`selection_key`: another value draws
                                another (equally deterministic) choice (default empty)
    ``split_mb``                ``collection.tsv``, ``queries.train.tsv``, ``qrels.train.tsv``
                                and ``qidpidtriples.train.full.2.tsv`` stored unpacked and
                                uncompressed and larger than this (default 16) are read
                                as byte ranges by several workers at once (a malformed
                                line in a range is named by its number after the range's
                                first byte); with several workers, archives and compressed
                                files are cut into blocks of this size (lines keep their
                                numbers in the file)
"""
from __future__ import annotations

import bisect
import functools
import hashlib
import posixpath
import re

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from pipelines.corpus import accounting
from pipelines.engine import files
from pipelines.engine.join import GatherTables, HashJoin, id_hash, id_hash_one, spill_runs, tables
from pipelines.corpus.normalize import mark_normalized, normalize_text
from pipelines.engine.read import ReadFiles, tagged_records
from pipelines.engine.formats import json_lines, parse_int, text_records, tsv_tables, unless_blank
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import gather_tables, make_row, make_rows
from pipelines.corpus.source import (Source, SourceContext, SourceError, SourceOutput, positive_float,
                                   positive_int)

DATASET = "msmarco_triplets"

DEFAULT_NEGATIVES_PER_POSITIVE = 33
DEFAULT_TRIPLES_PER_QUERY = 35
NEGATIVE_INPUTS = ("hard_negatives", "qidpidtriples", "triples_small")

# Input kinds, by file name; the first match of each kind is read.
COLLECTION, QUERIES, QRELS = "collection", "queries", "qrels"
HARD_NEGATIVES, QIDPIDTRIPLES, TRIPLES_SMALL = NEGATIVE_INPUTS
_FILE_NAMES = {
    COLLECTION: re.compile(r"^collection\.(tsv|tar|tgz)(\.\w+)*$"),
    QUERIES: re.compile(r"^queries\.(train\.tsv|tar|tgz)(\.\w+)*$"),
    QRELS: re.compile(r"^qrels\.train\.tsv(\.\w+)*$"),
    HARD_NEGATIVES: re.compile(r"^msmarco-hard-negatives\.jsonl(\.\w+)*$"),
    QIDPIDTRIPLES: re.compile(r"^qidpidtriples\.train\.full(\.2)?\.tsv(\.\w+)*$"),
    TRIPLES_SMALL: re.compile(r"^triples\.train\.small\.(tsv|tar|tgz)(\.\w+)*$"),
}
# The member each kind reads when its file is an archive.
_MEMBER_NAMES = {
    COLLECTION: "collection.tsv",
    QUERIES: "queries.train.tsv",
    QRELS: "qrels.train.tsv",
    HARD_NEGATIVES: "msmarco-hard-negatives.jsonl",
    QIDPIDTRIPLES: "qidpidtriples.train.full.2.tsv",
    TRIPLES_SMALL: "triples.train.small.tsv",
}
_ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".7z")
_EXCERPT_CHARS = 300


# -- parsing ---------------------------------------------------------------------------

def repair_mojibake(text: str) -> str:
    """Undo the collection's double encoding: UTF-8 bytes that were decoded as Latin-1.

    ``â\\x80\\x99`` becomes ``’``, ``Â½`` becomes ``½``. A text that does not survive the
    round trip (it holds characters beyond Latin-1, or its bytes are not UTF-8) was not
    damaged that way and is returned unchanged. C1 controls (U+0080..U+009F) are part of
    the damage and must still be there: strip them only after this repair.
    """
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return text


def _is_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _malformed(source_file, number, detail, excerpt):
    return rejected(DATASET, "malformed_line", source_file=source_file, record_id=f"line {number}",
                    detail=detail, excerpt=excerpt[:_EXCERPT_CHARS])


def _is_reject(item) -> bool:
    return isinstance(item, beam.pvalue.TaggedOutput)


def _tsv_lines(stream, source_file: str, columns: int, max_split: int = -1):
    """``(line_number, fields)`` of a TSV file with ``columns`` columns; blank lines are
    skipped, bad lines become rejects."""
    for item in text_records(stream, DATASET, source_file):
        if _is_reject(item):
            yield item
            continue
        number, text = item
        fields = text.split("\t", max_split)
        if len(fields) != columns:
            yield _malformed(source_file, number, f"expected {columns} TAB-separated columns, "
                             f"found {len(fields)}", text)
            continue
        yield number, fields


# Arrow schemas of what the id inputs become, and of the triplets on their way to rows.
PASSAGES = pa.schema([("pid", pa.int64()), ("text", pa.string())])
QUERY_TEXTS = pa.schema([("qid", pa.int64()), ("text", pa.string())])
JUDGED = pa.schema([("qid", pa.int64()), ("pid", pa.int64())])
# The source file is the same for every triple of one input: dictionary-encoded, it costs
# two bytes a row through the joins instead of its length.
SOURCE_FILE = pa.dictionary(pa.int16(), pa.string())
ID_TRIPLES = pa.schema([("qid", pa.int64()), ("pos", pa.int64()), ("neg", pa.int64()),
                        ("source_file", SOURCE_FILE)])


def _source_file_column(source_file: str, rows: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int16)), pa.array([source_file]))


def _with_texts(table: pa.Table, texts) -> pa.Table:
    return table.set_column(table.schema.get_field_index("text"), "text", pa.array(texts, pa.string()))


def read_collection(stream, source_file: str):
    """Passages of ``collection.tsv`` as ``(pid, text)`` tables; each text repaired
    (:func:`repair_mojibake`) and normalised once here, not once per triplet using it."""
    for item in tsv_tables(stream, DATASET, source_file, ("pid", "text"), ids=("pid",)):
        if _is_reject(item):
            yield item
            continue
        yield mark_normalized(_with_texts(item, [normalize_text(repair_mojibake(t))
                                                 for t in item["text"].to_pylist()]))


def read_queries(stream, source_file: str):
    """Queries of ``queries.train.tsv`` as ``(qid, text)`` tables, the text normalised
    (which strips it)."""
    for item in tsv_tables(stream, DATASET, source_file, ("qid", "text"), ids=("qid",)):
        if _is_reject(item):
            yield item
            continue
        yield mark_normalized(_with_texts(item, [normalize_text(t) for t in item["text"].to_pylist()]))


def read_qrels(stream, source_file: str):
    """Judged relevant pairs of ``qrels.train.tsv`` (TREC ``qid 0 pid rel``; TAB or space
    separated) as ``(qid, pid)`` tables. Lines with relevance 0 are judgements of
    non-relevance, not candidates, and are skipped."""
    pairs = (item if _is_reject(item) else {"qid": item[0], "pid": item[1]}
             for item in _judged_pairs(stream, source_file))
    yield from gather_tables(pairs, JUDGED, 1 << 16)


def _judged_pairs(stream, source_file: str):
    for item in text_records(stream, DATASET, source_file):
        if _is_reject(item):
            yield item
            continue
        number, text = item
        fields = text.split()
        ids = [parse_int(f) for f in fields]
        if len(fields) != 4 or any(i is None for i in ids):
            yield _malformed(source_file, number, "expected 4 integer columns: qid 0 pid relevance", text)
            continue
        qid, _iteration, pid, relevance = ids
        if relevance > 0:
            yield qid, pid


def hard_negative_problem(record: dict) -> tuple[str, str] | None:
    """Why a line of ``msmarco-hard-negatives.jsonl.gz`` cannot be used, as
    ``(reason, detail)``, or ``None`` when it can: ``qid`` an int, ``pos`` a list of
    ints (empty: ``no_positive``), ``neg`` an object mapping system names to lists of
    ints. JSON numbers written as strings or floats are wrong types, not ids."""
    qid, pos, neg = record.get("qid"), record.get("pos"), record.get("neg")
    if not _is_id(qid):
        return "malformed_record", "qid is missing or not an integer"
    if not isinstance(pos, list) or not all(_is_id(p) for p in pos):
        return "malformed_record", "pos is missing or not a list of integer pids"
    if not isinstance(neg, dict) or not all(
            isinstance(pids, list) and all(_is_id(p) for p in pids) for pids in neg.values()):
        return "malformed_record", "neg is missing or not an object of lists of integer pids"
    if not pos:
        return "no_positive", "the line has no relevant passage (empty pos)"
    return None


def read_hard_negatives(stream, source_file: str):
    """Lines of the hard-negatives file, keyed by qid, with their line number."""
    for item in json_lines(stream, DATASET, source_file):
        if _is_reject(item):
            yield item
            continue
        number, record = item
        problem = hard_negative_problem(record)
        if problem:
            reason, detail = problem
            yield rejected(DATASET, reason, source_file=source_file, record_id=f"line {number}",
                           detail=detail, excerpt=record)
            continue
        yield record["qid"], {
            "pos": record["pos"], "neg": record["neg"], "source_file": source_file, "line": number}


def read_id_triples(stream, source_file: str):
    """Triples of ``qidpidtriples.train.full.2.tsv`` as ``(qid, pos, neg, source_file)``
    tables; every line is a record read."""
    for item in tsv_tables(stream, DATASET, source_file, ("qid", "pos", "neg"), ids=("qid", "pos", "neg")):
        if _is_reject(item):
            yield item
            continue
        accounting.count_read(DATASET, item.num_rows)
        yield item.append_column("source_file", _source_file_column(source_file, item.num_rows))


def read_text_triples(stream, source_file: str):
    """``(query, (positive, negative, source_file, line))`` of ``triples.train.small.tsv``;
    both passages repaired, the query stripped."""
    for item in _tsv_lines(stream, source_file, 3):
        if _is_reject(item):
            yield item
            continue
        number, (query, positive, negative) = item
        yield query.strip(), (repair_mojibake(positive), repair_mojibake(negative), source_file, number)


# The id files: read as Arrow tables (the others yield one Python object per record), in one
# step (see MsMarco._read), and in byte ranges by several workers when they are big, plain files.
_TABLE_KINDS = (COLLECTION, QUERIES, QRELS, QIDPIDTRIPLES)
# A range costs one open and seek; 16 MB ones spread even a file of a few tens of MB over
# the workers (32 MB left the benchmark's 30 MB triples file to one worker of two).
DEFAULT_SPLIT_MB = 16.0
MiB = 1 << 20

_READERS = {
    COLLECTION: read_collection,
    QUERIES: read_queries,
    QRELS: read_qrels,
    HARD_NEGATIVES: read_hard_negatives,
    QIDPIDTRIPLES: read_id_triples,
    TRIPLES_SMALL: read_text_triples,
}


def read_input(stream, source_file: str, kind: str):
    """``read_file`` for :class:`ReadFiles`: one input (or archive member) read by the
    reader of its ``kind``; a file of blank lines only is a ``blank_file`` reject."""
    return unless_blank(_counting_rejects(_READERS[kind](stream, source_file)), stream, DATASET,
                        source_file)


def read_id_file(stream, source_file: str, kind: str):
    """:func:`read_input` for the id files read in one step: each table tagged with its
    ``kind`` (rejects keep their own tag)."""
    return tagged_records(read_input(stream, source_file, kind), kind)


def _counting_rejects(items):
    """Pass on what a reader yields; each line it rejects counts as one record read."""
    for item in items:
        if _is_reject(item):
            accounting.count_read(DATASET)
        yield item


def is_member_of(kind: str, member: str) -> bool:
    """Whether an archive member is the file ``kind`` reads (``queries.train.tsv`` of
    ``queries.tar.gz``; its dev and eval queries are skipped unread)."""
    return posixpath.basename(member) == _MEMBER_NAMES[kind]


# -- pair rules ------------------------------------------------------------------------

def selection_key(seed: str, *values) -> int:
    """Deterministic pseudo-random rank of one candidate: :func:`selection_keys` of one row,
    in plain Python. Values are ids (ints) or texts (the text triples of
    ``triples_small``), a text taken as its 64-bit BLAKE2b."""
    key = _as_id(seed) & _MASK64
    for value in values:
        key = id_hash_one(key ^ id_hash_one(_as_id(value) & _MASK64))
    return key


_MASK64 = (1 << 64) - 1


def selection_keys(seed: str, *columns) -> np.ndarray:
    """Deterministic pseudo-random ranks of candidates given as columns of integer ids
    (arrays of equal length), as ``uint64``: SplitMix64's finaliser chained over the
    seed's 64-bit BLAKE2b and each id. Choosing the candidates with the smallest keys takes
    an even spread of them, the same on every run and runner, whatever order the input
    comes in; vectorised, so ranking millions of triples costs next to nothing."""
    key = np.full(len(columns[0]), _as_id(seed), dtype=np.int64).view(np.uint64)
    for column in columns:
        key = id_hash((key ^ id_hash(column)).view(np.int64))
    return key


def _as_id(value) -> int:
    """An int id as itself; a text as its 64-bit BLAKE2b (as a signed 64-bit int)."""
    if isinstance(value, int):
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def select_hard_negatives(qid: int, positives, negatives_by_system: dict, judged=(), *,
                          systems=None, per_positive: int = DEFAULT_NEGATIVES_PER_POSITIVE,
                          seed: str = "") -> list[tuple[int, int]]:
    """**Project rule**: the ``(positive pid, negative pid)`` triplets of one query of
    the hard-negatives file.

    The candidates are the union of the lists of the chosen mining ``systems`` (all of
    them by default), minus every passage known to be relevant for the query (the
    line's ``pos`` and the query's qrels). Each positive gets ``per_positive`` of them,
    those with the smallest :func:`selection_key` of ``(qid, positive, negative)``.

    Why: 33 per (query, positive) over the file's 532,751 pairs lands on the documented
    17,579,773 (about 35 per judged query). Pooling all systems gives hundreds of
    candidates per query, so the cap nearly always binds. The cross-encoder scores that
    sentence-transformers used to drop false negatives are not loaded (a pickle); taking
    a hash-spread sample instead of each system's top ranks keeps the likeliest false
    negatives (the very top) from dominating, and does not depend on input order.
    Different positives of one query draw different negatives.
    """
    candidates = np.array(sorted(negative_candidates(positives, negatives_by_system, judged, systems)),
                          dtype=np.int64)
    triplets = []
    for positive in sorted(set(positives)):
        keys = selection_keys(seed, np.full(len(candidates), qid), np.full(len(candidates), positive),
                              candidates)
        # Stable on candidates sorted by pid: equal keys fall back to the smaller pid.
        ranked = candidates[np.argsort(keys, kind="stable")][:per_positive]
        triplets.extend((positive, int(negative)) for negative in ranked)
    return triplets


def negative_candidates(positives, negatives_by_system: dict, judged=(), systems=None) -> set:
    """The candidate negatives of one query of the hard-negatives file: the pids mined by
    the chosen ``systems`` (all when ``None``), minus the line's ``positives`` and the
    query's ``judged`` relevant pids (see :func:`select_hard_negatives`)."""
    wanted = None if systems is None else set(systems)
    known_relevant = set(positives) | set(judged)
    return {pid for system, pids in negatives_by_system.items()
            if wanted is None or system in wanted for pid in pids} - known_relevant


def keep_per_query(candidates, limit: int) -> list:
    """**Project rule**: the triples one query keeps from ``qidpidtriples`` or
    ``triples_small``: the ``limit`` distinct candidates with the smallest keys.

    Candidates are ``(selection_key, positive, negative, ...)`` tuples; the key is
    :func:`selection_key` of ``(query, positive, negative)``, so the choice never depends
    on the file's order (the files are sorted by query, and their first lines would all
    share BM25's top ranks). A triple repeated in the file counts once. Default 35 per
    query: 17,579,773 / ~500k judged queries.
    """
    return _SmallestDistinct.smallest(candidates, limit)


def triplet_row(triplet: dict) -> dict:
    """msmarco_triplets: (query text, relevant passage text, negative passage text)."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, triplet["query"], triplet["positive"], triplet["negative"],
                    source_file=triplet["source_file"], record_id=triplet["record_id"])


# -- Beam transforms --------------------------------------------------------------------

class _SmallestDistinct(beam.CombineFn):
    """Keep the ``limit`` smallest distinct candidates of a key (see :func:`keep_per_query`).
    Combiner lifting keeps only ``limit`` candidates per query and worker before the shuffle."""

    def __init__(self, limit: int):
        self.limit = limit

    @staticmethod
    def smallest(candidates, limit: int) -> list:
        kept: list = []
        for candidate in candidates:
            _SmallestDistinct._insert(kept, candidate, limit)
        return kept

    @staticmethod
    def _insert(kept: list, candidate, limit: int) -> None:
        # Candidates are equal when (key, positive, negative) are; the smaller tuple
        # (e.g. the earlier line) stands for them.
        if len(kept) >= limit and candidate >= kept[-1]:
            return
        position = bisect.bisect_left(kept, candidate)
        if position > 0 and kept[position - 1][:3] == candidate[:3]:
            return
        if position < len(kept) and kept[position][:3] == candidate[:3]:
            kept[position] = candidate
            return
        kept.insert(position, candidate)
        del kept[limit:]

    def create_accumulator(self):
        return []

    def add_input(self, kept, candidate):
        self._insert(kept, candidate, self.limit)
        return kept

    def merge_accumulators(self, accumulators):
        merged: list = []
        for kept in accumulators:
            for candidate in kept:
                self._insert(merged, candidate, self.limit)
        return merged

    def extract_output(self, kept):
        return kept


class _SmallestDistinctCounted(_SmallestDistinct):
    """:class:`_SmallestDistinct` that also counts the candidates it saw, so the ones not
    kept can be counted as skipped records; outputs ``(seen, kept)``."""

    def create_accumulator(self):
        return 0, []

    def add_input(self, accumulator, candidate):
        seen, kept = accumulator
        return seen + 1, super().add_input(kept, candidate)

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        return (sum(seen for seen, _kept in accumulators),
                super().merge_accumulators(kept for _seen, kept in accumulators))

    def extract_output(self, accumulator):
        return accumulator


class _KeyCandidates(beam.DoFn):
    """Prefix each text triple with its :func:`selection_key` and count it."""

    def __init__(self, seed: str):
        self.seed = seed
        self.read = Metrics.counter("msmarco", "triples_read")

    def process(self, element):
        query, (positive, negative, *rest) = element
        self.read.inc()
        accounting.count_read(DATASET)
        yield query, (selection_key(self.seed, query, positive, negative), positive, negative, *rest)


def _count_kept(element):
    """``(query, kept)`` from ``(query, (seen, kept))``; the triples not kept are counted
    as skipped records."""
    query, (seen, kept) = element
    Metrics.counter("msmarco", "triples_kept").inc(len(kept))
    accounting.count_skipped(DATASET, "beyond_query_cap", seen - len(kept))
    return query, kept


def select_triples(tables: dict, per_query: int, seed: str):
    """:class:`HashJoin` function of ``qidpidtriples``: the triples the queries of one
    task keep (:func:`keep_per_query`, vectorised), those whose negative is judged
    relevant rejected (``negative_is_positive``), the others with their query text
    (:func:`attach_text`).

    Args:
        tables: ``{"triples": (qid, pos, neg, source_file), "judged": (qid, pid),
            "texts": (qid, text)}``.
        per_query: triples kept per query.
        seed: salt of :func:`selection_key`.
    """
    for item in _kept_triples(tables["triples"], tables["judged"], per_query, seed):
        if _is_reject(item):
            yield item
        else:
            yield from attach_text({"triplets": item, "texts": tables["texts"]}, "query")


def _kept_triples(triples: pa.Table, judged: pa.Table, per_query: int, seed: str):
    if triples.num_rows == 0:
        return
    Metrics.counter("msmarco", "triples_read").inc(triples.num_rows)
    # A triple repeated verbatim is one candidate (a build reads one triples file).
    distinct = triples.group_by(["qid", "pos", "neg", "source_file"], use_threads=False).aggregate([])
    keys = selection_keys(seed, *(distinct[name].to_numpy() for name in ("qid", "pos", "neg")))
    ordered = distinct.append_column("_key", pa.array(keys, pa.uint64())).sort_by(
        [("qid", "ascending"), ("_key", "ascending"), ("pos", "ascending"), ("neg", "ascending")])
    qids = ordered["qid"].to_numpy()
    starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])
    rank = np.arange(len(qids)) - np.repeat(starts, np.diff(np.r_[starts, len(qids)]))
    kept = ordered.filter(pa.array(rank < per_query)).drop_columns(["_key"])
    Metrics.counter("msmarco", "triples_kept").inc(kept.num_rows)
    accounting.count_skipped(DATASET, "beyond_query_cap", triples.num_rows - kept.num_rows)
    if judged.num_rows:
        marks = judged.group_by(["qid", "pid"], use_threads=False).aggregate([])
        marks = marks.append_column("_judged", pa.array(np.ones(marks.num_rows, dtype=bool)))
        kept = kept.join(marks, keys=["qid", "neg"], right_keys=["qid", "pid"],
                         join_type="left outer", use_threads=False)
        relevant = pc.is_valid(kept["_judged"])
        for triplet in kept.filter(relevant).drop_columns(["_judged"]).to_pylist():
            record_id = f"{triplet['qid']}/{triplet['pos']}/{triplet['neg']}"
            yield rejected(DATASET, "negative_is_positive", source_file=triplet["source_file"],
                           record_id=record_id, excerpt={**triplet, "record_id": record_id},
                           detail="the negative passage is judged relevant for the query in the qrels")
        kept = kept.filter(pc.invert(relevant)).drop_columns(["_judged"])
    yield kept.select(ID_TRIPLES.names)


def _first_line(lines: list) -> tuple[dict, list]:
    lines = sorted(lines, key=lambda line: (line["source_file"], line["line"]))
    return lines[0], lines[1:]


def _hard_negative_triplets(element, systems, per_positive: int, seed: str):
    qid, grouped = element
    lines = list(grouped["line"])
    if lines:  # a judged query without mined negatives is not a candidate
        yield from _line_triplets(qid, lines, list(grouped["judged"]), systems, per_positive, seed)


def _line_triplets(qid: int, lines: list, judged: list, systems, per_positive: int, seed: str):
    line, repeated = _first_line(lines)
    for extra in repeated:
        # the whole line is one record
        yield rejected(DATASET, "duplicate_query_line", counts_as_read=True,
                       source_file=extra["source_file"],
                       record_id=f"line {extra['line']}",
                       detail=f"qid {qid} already has line {line['line']} of {line['source_file']}",
                       excerpt={"qid": qid, "pos": extra["pos"]})
    pairs = select_hard_negatives(qid, line["pos"], line["neg"], judged,
                                  systems=systems, per_positive=per_positive, seed=seed)
    candidates = len(set(line["pos"])) * len(negative_candidates(line["pos"], line["neg"], judged, systems))
    # A line without any candidate is one record (rejected); otherwise each candidate is.
    accounting.count_read(DATASET, max(candidates, 1))
    accounting.count_skipped(DATASET, "beyond_positive_cap", candidates - len(pairs))
    if not pairs:
        yield rejected(DATASET, "no_negative", source_file=line["source_file"],
                       record_id=f"line {line['line']}", excerpt={"qid": qid, "pos": line["pos"]},
                       detail="no mined negative left once the query's relevant passages are removed")
    for positive, negative in pairs:
        yield {"qid": qid, "pos": positive, "neg": negative, "source_file": line["source_file"]}


def _text_triplets(element):
    query, kept = element
    for _key, positive, negative, source_file, line in kept:
        yield {"query": query, "positive": positive, "negative": negative,
               "source_file": source_file, "record_id": f"line {line}"}


# How each join step finds its id and names what it adds (field, reasons when absent /
# ambiguous, what the id is called in messages).
_JOINS = {
    "query": ("qid", "query", "query_missing", "duplicate_query_id", "query id"),
    "positive": ("pos", "positive", "positive_missing", "duplicate_passage_id", "positive pid"),
    "negative": ("neg", "negative", "negative_missing", "duplicate_passage_id", "negative pid"),
}


def attach_text(tables: dict, step: str):
    """:class:`HashJoin` function: give every triplet of one task the text of its id for
    ``step`` (``query``, ``positive`` or ``negative``), or reject it when the id has no
    text (``*_missing``) or several different ones (``duplicate_*_id``).

    The triplets keep their order and columns; only the text column is new (a ``take``
    from the task's texts), so the texts already attached are not copied again.

    Args:
        tables: ``{"triplets": (qid, pos, neg, source_file, texts so far), "texts": (id, text)}``.
        step: a key of ``_JOINS``.
    """
    id_field, text_field, missing, ambiguous, what = _JOINS[step]
    triplets, texts = tables["triplets"], tables["texts"]
    if triplets.num_rows == 0:
        return
    ids, counts, text = _texts_per_id(texts)
    position = pc.index_in(triplets[id_field], value_set=ids)
    count = (pc.if_else(pc.is_valid(position), 1, 0) if counts is None
             else pc.fill_null(pc.take(counts, position), 0))
    found = pc.equal(count, 1)
    if not pc.all(found).as_py():
        lost = triplets.select(["qid", "pos", "neg", "source_file"]).append_column("count", count)
        for triplet in lost.filter(pc.invert(found)).to_pylist():
            count_of_id = triplet.pop("count")
            record_id = f"{triplet['qid']}/{triplet['pos']}/{triplet['neg']}"
            detail = (f"{what} {triplet[id_field]} not found" if not count_of_id else
                      f"{what} {triplet[id_field]} has {count_of_id} different texts")
            yield rejected(DATASET, missing if not count_of_id else ambiguous,
                           source_file=triplet["source_file"], record_id=record_id, detail=detail,
                           excerpt={k: triplet[k] for k in ("qid", "pos", "neg")})
        triplets, position = triplets.filter(found), position.filter(found)
    yield triplets.append_column(text_field, pc.take(text, position))


def _texts_per_id(texts: pa.Table) -> tuple[pa.Array, pa.Array | None, pa.Array]:
    """``(ids, text counts, texts)`` of one task's ``(id, text)`` table: per distinct id the
    number of different texts given for it (``None`` when every id is given once) and a text.

    Ids are nearly always given once, so texts are compared (hashed) only for the ids that
    appear more than once: an id given twice with the same text counts one text.
    """
    text_id = texts.schema.names[0]
    ids = texts[text_id].combine_chunks() if texts.num_rows else pa.array([], pa.int64())
    # Whether any id repeats, from the sorted ids (a tenth of a group_by's time); the texts
    # stay in their chunks (take gathers them).
    ordered = np.sort(ids.to_numpy(zero_copy_only=False))
    if not (ordered[1:] == ordered[:-1]).any():
        return ids, None, texts["text"]
    texts = texts.combine_chunks()
    counts = texts.group_by(text_id, use_threads=False).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))[text_id]
    once = texts.filter(pc.invert(pc.is_in(texts[text_id], repeated)))
    several = texts.filter(pc.is_in(texts[text_id], repeated))
    distinct = (several.group_by([text_id, "text"], use_threads=False).aggregate([])
                .group_by(text_id, use_threads=False).aggregate([("text", "count"), ("text", "min")]))
    per_id = pa.concat_tables([
        pa.table({text_id: once[text_id], "text_count": pa.array(np.ones(once.num_rows, np.int64)),
                  "text": once["text"]}),
        distinct.select([text_id, "text_count", "text_min"]).rename_columns([text_id, "text_count", "text"])
        .cast(pa.schema([(text_id, pa.int64()), ("text_count", pa.int64()), ("text", pa.string())])),
    ]).combine_chunks()
    return per_id[text_id].chunk(0), per_id["text_count"].chunk(0), per_id["text"]


def triplet_rows(table: pa.Table) -> pa.Table:
    """msmarco_triplets rows from joined triplets: (query text, relevant passage text,
    negative passage text); the record id is ``qid/positive pid/negative pid``. The texts
    were normalised where they were read."""
    accounting.count_paired(DATASET, table.num_rows)
    as_text = [pc.cast(table[name], pa.string()) for name in ("qid", "pos", "neg")]
    return mark_normalized(make_rows(
        DATASET, table["query"], table["positive"], table["negative"],
        source_file=pc.cast(table["source_file"], pa.string()),
        record_id=pc.binary_join_element_wise(*as_text, "/")))


class MsMarco(Source):
    name = "msmarco"
    counts_records = True
    folder = "msmarco"
    datasets = (DATASET,)
    description = "MS MARCO passage ranking: query, relevant passage, hard-negative passage"

    # -- inputs ------------------------------------------------------------------------
    def find_inputs(self, ctx: SourceContext) -> dict[str, str]:
        """The file read for each kind present: ``{kind: path}``. Unpacked files win over
        archives, then the shorter and alphabetically first name."""
        found: dict[str, list[str]] = {}
        for path, _size in files.list_dir(ctx.source_dir):
            base = posixpath.basename(path)
            for kind, pattern in _FILE_NAMES.items():
                if pattern.match(base):
                    found.setdefault(kind, []).append(path)
        return {kind: sorted(paths, key=lambda p: (posixpath.basename(p).endswith(_ARCHIVE_SUFFIXES),
                                                   len(p), p))[0]
                for kind, paths in found.items()}

    def negatives_input(self, ctx: SourceContext, found: dict[str, str]) -> str:
        """The negatives input this run reads (option ``negatives``)."""
        choice = ctx.option("negatives", "auto", choices=("auto", *NEGATIVE_INPUTS))
        if choice == "auto":
            present = [kind for kind in NEGATIVE_INPUTS if kind in found]
            if not present:
                raise SourceError(f"no negatives input under {ctx.source_dir}/: expected "
                                   "msmarco-hard-negatives.jsonl.gz, qidpidtriples.train.full.2.tsv(.gz) "
                                   "or triples.train.small.tsv (or .tar.gz)")
            choice = present[0]
        elif choice not in found:
            raise SourceError(f"msmarco.negatives={choice}: its file is not under {ctx.source_dir}/")
        if choice != TRIPLES_SMALL:
            absent = [name for kind, name in ((COLLECTION, "collection.tsv (or collection.tar.gz)"),
                                              (QUERIES, "queries.train.tsv (or queries.tar.gz)"))
                      if kind not in found]
            if absent:
                raise SourceError(f"msmarco ({choice}) needs {' and '.join(absent)} under "
                                   f"{ctx.source_dir}/ to turn ids into texts")
        return choice

    def _read_plan(self, ctx: SourceContext) -> tuple[str, list[tuple[str, str]]]:
        found = self.find_inputs(ctx)
        choice = self.negatives_input(ctx, found)
        kinds = [choice] if choice == TRIPLES_SMALL else [COLLECTION, QUERIES, QRELS, choice]
        return choice, [(kind, found[kind]) for kind in kinds if kind in found]

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        sizes = dict(files.list_dir(ctx.source_dir))
        return [(path, sizes[path]) for _kind, path in self._read_plan(ctx)[1]]

    # -- pipeline ----------------------------------------------------------------------
    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        choice, plan = self._read_plan(ctx)
        seed = ctx.option("seed", "")
        per_query = _positive_option(ctx, "triples_per_query", DEFAULT_TRIPLES_PER_QUERY)
        read, rejects = self._read(pipeline, ctx, plan)

        if choice == TRIPLES_SMALL:
            rows = (
                read[TRIPLES_SMALL]
                | "msmarco/KeyTextTriples" >> beam.ParDo(_KeyCandidates(seed))
                | "msmarco/KeepPerQuery" >> beam.CombinePerKey(_SmallestDistinctCounted(per_query))
                | "msmarco/CountKept" >> beam.Map(_count_kept)
                | "msmarco/TextTriplets" >> beam.FlatMap(_text_triplets)
                | "msmarco/Row" >> beam.Map(triplet_row)
            )
            return SourceOutput(rows={DATASET: rows}, rejects=rejects)

        spill_dir = ctx.scratch_dir()

        def runs(pcoll, label: str, key: str, schema: pa.Schema):
            return spill_runs(pcoll, f"msmarco/Spill{label}", files.join(spill_dir, label), key, schema)

        no_tables = pipeline | "msmarco/NoQrels" >> beam.Create([])
        judged = read.get(QRELS, no_tables)
        if choice == HARD_NEGATIVES:
            systems = _systems_option(ctx)
            per_positive = _positive_option(ctx, "negatives_per_positive", DEFAULT_NEGATIVES_PER_POSITIVE)
            judged_pairs = judged | "msmarco/JudgedPairs" >> beam.FlatMap(
                lambda table: zip(table["qid"].to_pylist(), table["pid"].to_pylist()))
            selected = (
                {"line": read[HARD_NEGATIVES], "judged": judged_pairs}
                | "msmarco/JoinQrels" >> beam.CoGroupByKey()
                | "msmarco/SelectNegatives" >> beam.FlatMap(
                    _hard_negative_triplets, systems, per_positive, seed)
                .with_outputs(REJECTED, main="triplets")
            )
            triplets = selected.triplets | "msmarco/TripletTables" >> tables(beam.ParDo(
                GatherTables(ID_TRIPLES, rows_per_table=1 << 16)))
        else:
            # Triples, qrels and query texts are all keyed by qid: one join selects the
            # triples and gives them their query text.
            selected = (
                {"triples": runs(read[QIDPIDTRIPLES], "Triples", "qid", ID_TRIPLES),
                 "judged": runs(judged, "Judged", "qid", JUDGED),
                 "texts": runs(read[QUERIES], "Queries", "qid", QUERY_TEXTS)}
                | "msmarco/KeepPerQuery" >> HashJoin(
                    functools.partial(select_triples, per_query=per_query, seed=seed),
                    {"triples": ID_TRIPLES, "judged": JUDGED, "texts": QUERY_TEXTS})
            )
            triplets = selected.main
        rejects.append(selected[REJECTED])

        passage_runs = runs(read[COLLECTION], "Passages", "pid", PASSAGES)
        schema = ID_TRIPLES
        # The relevant passage last: a task of that join holds every triplet of its
        # (query, positive) pairs, so they reach the sink side by side, which stores their
        # repeated texts once per run batch (sink.elide_repeats).
        steps = [("negative", passage_runs, PASSAGES), ("positive", passage_runs, PASSAGES)]
        if choice == HARD_NEGATIVES:
            steps.insert(0, ("query", runs(read[QUERIES], "Queries", "qid", QUERY_TEXTS), QUERY_TEXTS))
        else:
            schema = schema.append(pa.field("query", pa.string()))
        for step, texts, text_schema in steps:
            id_field, text_field = _JOINS[step][:2]
            label = step.capitalize()
            joined = (
                {"triplets": runs(triplets, f"TripletsBy{label}", id_field, schema), "texts": texts}
                | f"msmarco/Join{label}" >> HashJoin(
                    functools.partial(attach_text, step=step),
                    {"triplets": schema, "texts": text_schema}, passed_on=("triplets",))
            )
            schema = schema.append(pa.field(text_field, pa.string()))
            rejects.append(joined[REJECTED])
            triplets = joined.main
        rows = triplets | "msmarco/Rows" >> tables(beam.Map(triplet_rows))
        return SourceOutput(rows={DATASET: rows}, rejects=rejects)

    @staticmethod
    def _read(pipeline, ctx: SourceContext, plan: list[tuple[str, str]]) -> tuple[dict, list]:
        """The records of each kind of ``plan`` (``{kind: PCollection}``) and the rejects of
        reading them (a list of PCollections).

        The id files (collection, queries, qrels, qidpidtriples: Arrow tables) are read in
        one step, each table tagged with its kind, so that the workers share all their
        byte ranges: read one step per kind, a worker waited while the other read the
        small queries or qrels file alone. Big plain ones are read in byte ranges (option
        ``split_mb``); with several workers, archives and compressed files are cut into
        blocks. The hard-negatives and ``triples_small`` files are read in a step of their own.
        """
        split_mb = ctx.option("split_mb", DEFAULT_SPLIT_MB, positive_float)
        split_bytes = int(split_mb * MiB)
        blocks = files.join(ctx.scratch_dir(), "blocks")
        records, rejects = {}, []
        id_files = [(path, kind) for kind, path in plan if kind in _TABLE_KINDS]
        if id_files:
            result = pipeline | "msmarco/ReadIdFiles" >> ReadFiles(
                id_files, read_id_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict,
                members=is_member_of, members_take_context=True,
                outputs=tuple(kind for _path, kind in id_files), split_bytes=split_bytes,
                cut_dir=files.join(blocks, "id_files"), cut_bytes=split_bytes)
            records.update({kind: result[kind] for _path, kind in id_files})
            rejects.append(result[REJECTED])
        for kind, path in plan:
            if kind in _TABLE_KINDS:
                continue
            result = pipeline | f"msmarco/Read{kind.title().replace('_', '')}" >> ReadFiles(
                [(path, kind)], read_input, input_root=ctx.input_root, dataset=DATASET,
                strict=ctx.strict, members=functools.partial(is_member_of, kind),
                cut_dir=files.join(blocks, kind), cut_bytes=split_bytes)
            records[kind] = result.records
            rejects.append(result[REJECTED])
        return records, rejects


def _positive_option(ctx: SourceContext, key: str, default: int) -> int:
    return ctx.option(key, default, positive_int)


def _system_names(value: str) -> tuple[str, ...] | None:
    value = value.strip()
    if value == "all":
        return None
    systems = tuple(sorted({s.strip() for s in value.split(",") if s.strip()}))
    if not systems:
        raise ValueError("expected 'all' or comma-separated system names")
    return systems


def _systems_option(ctx: SourceContext) -> tuple[str, ...] | None:
    return ctx.option("systems", None, _system_names)


SOURCE = MsMarco()
