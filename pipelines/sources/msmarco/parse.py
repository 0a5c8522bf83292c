"""Reading the MS MARCO files: which file is which input, the reader of each kind and the
Arrow schemas of the tables the id files become (see the package docstring)."""
from __future__ import annotations

import posixpath
import re

import apache_beam as beam
import numpy as np
import pyarrow as pa

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_column
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import gather_tables
from pipelines.engine import (
    json_lines,
    parse_int,
    tagged_records,
    text_records,
    tsv_tables,
    unless_blank,
)

DATASET = "msmarco_triplets"

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
# The lookup tables whose rows are counted as input rows (accounting.count_input_rows):
# taken when a triplet names their id, else not used (see accounting.count_lookup_rows).
SOURCE_NAME = "msmarco"
COLLECTION_TABLE, QUERIES_TABLE = _MEMBER_NAMES[COLLECTION], _MEMBER_NAMES[QUERIES]
# The qrels' rows are counted where they are read: taken (judged relevant), or skipped.
QRELS_TABLE, NOT_RELEVANT = _MEMBER_NAMES[QRELS], "judged_not_relevant"
_COUNTED_TABLES = {COLLECTION: COLLECTION_TABLE, QUERIES: QUERIES_TABLE, QRELS: QRELS_TABLE}
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
# The positives of the triplets, a side of the negative-passage join (which counts the
# collection's rows, see MsMarco.expand).
POSITIVE_IDS = pa.schema([("pos", pa.int64())])


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
        yield _with_texts(item, normalize_column(item["text"], prepare=repair_mojibake))


def read_queries(stream, source_file: str):
    """Queries of ``queries.train.tsv`` as ``(qid, text)`` tables, the text normalised
    (which strips it)."""
    for item in tsv_tables(stream, DATASET, source_file, ("qid", "text"), ids=("qid",)):
        if _is_reject(item):
            yield item
            continue
        yield _with_texts(item, normalize_column(item["text"]))


def read_qrels(stream, source_file: str):
    """Judged relevant pairs of ``qrels.train.tsv`` (TREC ``qid 0 pid rel``; TAB or space
    separated) as ``(qid, pid)`` tables. Lines with relevance 0 are judgements of
    non-relevance, not candidates: skipped, and counted as input rows skipped."""
    pairs = (item if _is_reject(item) else {"qid": item[0], "pid": item[1]}
             for item in _judged_pairs(stream, source_file))
    yield from gather_tables(pairs, JUDGED, 1 << 16)


def _judged_pairs(stream, source_file: str):
    relevant = not_relevant = 0  # input rows, counted once per file (or byte range)
    try:
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
                relevant += 1
                yield qid, pid
            else:
                not_relevant += 1
    finally:
        for skipped, n in ((None, relevant), (NOT_RELEVANT, not_relevant)):
            if n:
                accounting.count_input_rows(SOURCE_NAME, QRELS_TABLE, skipped, n)


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
    """``read_file`` for :class:`~pipelines.engine.ReadFiles`: one input (or archive member)
    read by the reader of its ``kind``; a file of blank lines only is a ``blank_file``
    reject."""
    items = _counting_rejects(_READERS[kind](stream, source_file))
    if kind in _COUNTED_TABLES:
        items = accounting.counting_rejected_rows(items, SOURCE_NAME, _COUNTED_TABLES[kind])
    return unless_blank(items, stream, DATASET, source_file)


def read_id_file(stream, source_file: str, kind: str):
    """:func:`read_input` for the id files read in one step: each table tagged with its
    ``kind`` (rejects keep their own tag)."""
    return tagged_records(read_input(stream, source_file, kind), kind)


def _counting_rejects(items):
    """Pass on what a reader yields; each line it rejects counts as one record read.
    Rejects are rare, so they are counted one by one."""
    for item in items:
        if _is_reject(item):
            accounting.count_read(DATASET)
        yield item


def is_member_of(kind: str, member: str) -> bool:
    """Whether an archive member is the file ``kind`` reads (``queries.train.tsv`` of
    ``queries.tar.gz``; its dev and eval queries are skipped unread)."""
    return posixpath.basename(member) == _MEMBER_NAMES[kind]

