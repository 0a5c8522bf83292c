"""PAQ (Probably Asked Questions): (generated question, Wikipedia passage) pairs.

Files (under ``IN/paq/``, as published at ``dl.fbaipublicfiles.com/paq/v1/``):
    ``PAQ.tar.gz``                  the question list; its member ``PAQ/PAQ.filtered.jsonl``
                                    is streamed out of the archive (``PAQ/LICENSE`` and
                                    other members are not read)
    ``PAQ.filtered.jsonl``          the same list unpacked (usually ``PAQ/PAQ.filtered.jsonl``)
    ``PAQ.metadata.jsonl.gz``       per question the passages it was generated from
    ``psgs_w100.tsv.gz``            the DPR Wikipedia passages (21M rows)

Every file may sit anywhere below ``IN/paq/``, plain or compressed (gzip, bzip2, xz, zstd:
sniffed from the bytes; ``.gz``/``.bz2``/``.xz``/``.zst`` after the name are allowed).
Other files are not inputs of this dataset and are not read: the subsets ``PAQ_L1``,
``PAQ_L4``, ``PAQ_NE1``, ``TQA_TRAIN_NQ_TRAIN_PAQ`` (other question lists),
``PAQ.unfiltered_metadata.jsonl.gz`` (questions that failed the consistency filter),
``PASSAGE_SCORES`` and licences. Exactly one file of each kind is read: an unpacked file
is preferred to a compressed one, a compressed one to the ``PAQ.tar.gz`` archive, then
the shortest path; every other candidate of that kind is recorded as a
``duplicate_input`` reject naming the file that was read. A required file that is
absent gives one ``missing_file`` reject and no rows (with ``--strict`` the run stops).

Parse:
    ``PAQ.filtered.jsonl``  NQ-open line format ``{"question": str, "answer": [str, ...]}``
                            (:func:`parse_filtered_line`); it carries no passage id.
    ``PAQ.metadata.jsonl``  ``{"question", "subsets", "answer", "passage_score",
                            "answers": [{"passage_id", "offset", "text", "extractor"}]}``
                            (:func:`parse_metadata_line`); passage ids are ints or
                            decimal strings and are compared as canonical decimal text.
    ``psgs_w100.tsv``       ``id \\t text \\t title``, read with ``csv`` quoting as DPR
                            itself reads it: the text field is wrapped in ``"`` with inner
                            quotes doubled (``"Aaron ( or ; ""Ahärôn"") is ..."``). One
                            passage is one line (DPR passages have no newline); a line whose
                            quote is never closed is rejected, not joined with the next.
                            The header line, when present, gives the column order (PAQ's
                            README lists title before text, DPR's header text before title);
                            without a header the order is DPR's (:func:`parse_passage_line`).
Questions are kept exactly as generated (lower case, no question mark); the passage is
its text without the title. Passage texts are normalised where they are read (once per
passage, not once per question using it), questions when they become rows; joins compare
the texts as read.

Pair rules, one function each:
    :func:`question_is_candidate`   which metadata records are candidates: those whose
                                    question is in ``PAQ.filtered.jsonl`` (option
                                    ``filtered_only``)
    :func:`choose_passages`         which passage(s) of a question give a pair (option
                                    ``passages``)
    :func:`question_passage_pair`   paq: (question, passage text)

Joins: the inputs are read into Arrow tables, each row keyed by the 64-bit key of the
text it is joined on (:func:`pipelines.engine.join.text_key`), and joined with
partitioned hash joins (:class:`pipelines.engine.join.HashJoin`): the filtered list
restricts the metadata by question (:func:`select_candidates`), then questions meet their
passages by passage id (:func:`pair_with_passages`). Every side is spilled in runs and
each task holds one hash range of it, so memory stays bounded whatever the input size;
psgs_w100.tsv (13 GB) is only ever streamed.

Documented count: 64,371,441 pairs (the model card) for 64,875,601 filtered questions.
One pair per filtered question (the defaults) gives about 64.9M, 0.8% above the card and
inside the dataset's 1% tolerance; the original conversion was never published, so the
remaining gap is reported, not tuned away.

Metadata records whose question is not in the filtered list are not candidates (the
filtered list *is* the dataset) and are skipped without a reject, even when they have no
usable passage id; passages no question points at are not candidates either. Every
candidate question ends as rows or as one reject: ``no_metadata`` (listed, but no
metadata record), ``no_passage`` / ``bad_passage_id`` (its record names no usable
passage), ``passage_missing`` (the id is not in psgs_w100.tsv). Lines that cannot be
parsed are rejected where they are read (``bad_json``, ``bad_encoding``,
``malformed_question``, ``malformed_passage``), and a passage id that occurs twice in
psgs_w100.tsv is used with its first line, the later ones being ``duplicate_passage_id``.
Records (:mod:`pipelines.corpus.accounting`): a record is one (question, passage) candidate,
i.e. a metadata record with one passage chosen by :func:`choose_passages` (so one record
per metadata question with the default ``passages=first``). It ends as a pair or a
``passage_missing`` reject. What is decided before a passage is chosen is one record: a
metadata record without a usable passage id (``no_passage``, ``bad_passage_id``), a
listed question without metadata (``no_metadata``), and the skip
``not_in_filtered_list`` for a metadata record whose question is not in the filtered
list. Lines of the filtered list and of psgs_w100.tsv are not records, except those
rejected where they are read, which count as one record read and rejected each (as do
``duplicate_passage_id`` lines and the layout rejects).

Whole files are judged by the core's reader: ``no_member`` (a ``PAQ.tar.gz`` without
``PAQ.filtered.jsonl``), ``empty_file`` (no byte at all), ``unreadable_file``.

Source options (``--source-option paq.<key>=<value>``):
    ``filtered_only``   ``true`` (default): keep only metadata questions listed in
                        ``PAQ.filtered.jsonl``; ``false``: use every metadata record and
                        do not read the question list.
    ``passages``        ``first`` (default): the passage of the first entry of
                        ``answers``; ``all``: one pair per distinct passage id.
"""
from __future__ import annotations

import csv
import json
import posixpath
import re
from dataclasses import dataclass, field

import functools

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.corpus import accounting
from pipelines.engine import files
from pipelines.engine.join import HashJoin, spill_runs, tables, text_key
from pipelines.corpus.normalize import mark_normalized, normalize_column, normalize_text
from pipelines.engine.read import ReadFiles, tagged_records
from pipelines.engine.formats import json_lines, text_records
from pipelines.corpus.rejects import REJECTED, layout_rejects, make_reject, rejected
from pipelines.corpus.schema import gather_tables, make_row, make_rows
from pipelines.corpus.source import Source, SourceContext, SourceError, SourceOutput, parse_bool

DATASET = "paq"

FILTERED, ARCHIVE, METADATA, PASSAGES = "filtered", "archive", "metadata", "passages"
FILTERED_MEMBER = "PAQ.filtered.jsonl"
_COMPRESSION_SUFFIX = r"(?:\.(?:gz|bz2|xz|zst))?"
# File name -> kind; anything else below IN/paq/ is not an input.
_INPUT_NAMES = (
    (re.compile(rf"^PAQ\.filtered\.jsonl{_COMPRESSION_SUFFIX}$"), FILTERED),
    (re.compile(r"^PAQ\.tar\.gz$"), ARCHIVE),
    (re.compile(rf"^PAQ\.metadata\.jsonl{_COMPRESSION_SUFFIX}$"), METADATA),
    (re.compile(rf"^psgs_w100\.tsv{_COMPRESSION_SUFFIX}$"), PASSAGES),
)
PASSAGE_COLUMNS = ("id", "text", "title")  # DPR's order, used when there is no header
PASSAGE_RULES = ("first", "all")
EXCERPT_CHARS = 500

# What the inputs become: Arrow tables keyed by ``key``, the 64-bit key of the text they
# are joined on (:func:`pipelines.engine.join.text_key` of the question, or of the
# canonical passage id).
LISTED = pa.schema([("key", pa.int64()), ("question", pa.string()), ("source_file", pa.string()),
                    ("line", pa.int64())])
METADATA_RECORDS = pa.schema([
    ("key", pa.int64()), ("question", pa.string()), ("passage_ids", pa.list_(pa.string())),
    ("reason", pa.string()), ("detail", pa.string()), ("excerpt", pa.string()),
    ("source_file", pa.string()), ("line", pa.int64())])
QUESTIONS = pa.schema([("key", pa.int64()), ("passage_id", pa.string()), ("question", pa.string()),
                       ("source_file", pa.string()), ("line", pa.int64())])
PASSAGE_TEXTS = pa.schema([("key", pa.int64()), ("passage_id", pa.string()), ("text", pa.string()),
                           ("line", pa.int64())])


# -- finding the inputs -----------------------------------------------------------------

@dataclass
class PaqInputs:
    """The files one run reads (``None`` when absent) and the candidates it ignores.

    ``questions`` is the filtered list, unpacked or the archive (``questions_kind``).
    ``duplicates`` holds ``(ignored path, path read instead)``.
    """

    questions: str | None = None
    questions_kind: str = FILTERED
    metadata: str | None = None
    passages: str | None = None
    duplicates: list = field(default_factory=list)


def input_kind(name: str) -> str | None:
    """Which PAQ input a file is, from its base name, or ``None`` when it is none."""
    for pattern, kind in _INPUT_NAMES:
        if pattern.match(name):
            return kind
    return None


def _preference(path: str, kind: str) -> tuple:
    # Unpacked before compressed before the archive; then the shortest, then sorted path.
    packed = 2 if kind == ARCHIVE else int(not posixpath.basename(path).endswith((".jsonl", ".tsv")))
    return packed, len(path), path


def find_inputs(paths: list[str]) -> PaqInputs:
    """Pick one file per kind among ``paths`` (see the module docstring)."""
    by_role: dict[str, list[tuple[str, str]]] = {FILTERED: [], METADATA: [], PASSAGES: []}
    for path in paths:
        kind = input_kind(posixpath.basename(path))
        if kind is not None:
            by_role[FILTERED if kind == ARCHIVE else kind].append((path, kind))
    found = PaqInputs()
    for role, candidates in by_role.items():
        if not candidates:
            continue
        candidates.sort(key=lambda item: _preference(*item))
        (chosen, kind), rest = candidates[0], candidates[1:]
        found.duplicates.extend((path, chosen) for path, _kind in rest)
        if role == FILTERED:
            found.questions, found.questions_kind = chosen, kind
        elif role == METADATA:
            found.metadata = chosen
        else:
            found.passages = chosen
    return found


# -- parsing ----------------------------------------------------------------------------

def canonical_passage_id(value) -> str | None:
    """A passage id as canonical decimal text (``7``, ``"7"`` and ``"007"`` are ``"7"``),
    or ``None`` when it is not a non-negative integer."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value) if value >= 0 else None
    if not isinstance(value, str):
        return None
    if value.isascii() and value.isdigit() and (value[0] != "0" or value == "0"):
        return value  # already canonical: the usual case, without the round trip through int
    digits = value.strip()
    return str(int(digits)) if digits.isascii() and digits.isdigit() else None


def parse_filtered_line(record: dict) -> tuple[str | None, str]:
    """The question of a ``PAQ.filtered.jsonl`` line (NQ-open format).

    Returns:
        ``(question, "")``, or ``(None, problem)`` when the line is not a question with a
        list of answers.
    """
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        return None, "no question string"
    answers = record.get("answer")
    if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
        return None, "'answer' is not a list of strings"
    return question, ""


def parse_metadata_line(record: dict) -> tuple[dict | None, str, str]:
    """Question and passage ids of a ``PAQ.metadata.jsonl`` line.

    Returns:
        ``({"question", "passage_ids"}, "", "")`` with the passage ids of ``answers`` in
        their upstream order, or ``(None, reason, detail)``.
    """
    question = record.get("question")
    if not isinstance(question, str) or not question.strip():
        return None, "malformed_question", "no question string"
    answers = record.get("answers")
    if not isinstance(answers, list) or not answers:
        return None, "no_passage", "'answers' is missing or empty: no passage generated the question"
    passage_ids = []
    for index, answer in enumerate(answers):
        passage_id = canonical_passage_id(answer.get("passage_id")) if isinstance(answer, dict) else None
        if passage_id is None:
            return None, "bad_passage_id", f"answers[{index}] has no integer passage_id"
        passage_ids.append(passage_id)
    return {"question": question, "passage_ids": passage_ids}, "", ""


def passage_header(fields: list[str]) -> dict | None:
    """Column positions from a header row (``id``, ``text``, ``title`` in any order), or
    ``None`` when ``fields`` is not a header."""
    names = [f.strip().lower() for f in fields]
    if sorted(names) != sorted(PASSAGE_COLUMNS):
        return None
    return {name: names.index(name) for name in PASSAGE_COLUMNS}


def parse_passage_line(text: str, columns: dict) -> tuple[tuple[str, str] | None, str]:
    """``(passage id, passage text)`` of one psgs_w100.tsv line, or ``(None, problem)``.

    Fields use CSV quoting (``"`` wraps a field, ``""`` is a quote inside it), as DPR's
    own reader (``csv.reader(delimiter='\\t')``) expects.
    """
    try:
        fields = next(csv.reader([text], delimiter="\t", strict=True))
    except csv.Error as exc:
        return None, f"bad CSV quoting ({exc}); a passage never spans lines"
    except StopIteration:
        return None, "empty line"
    if len(fields) != len(PASSAGE_COLUMNS):
        return None, f"{len(fields)} fields, expected {len(PASSAGE_COLUMNS)} (id, text, title)"
    passage_id = canonical_passage_id(fields[columns["id"]])
    if passage_id is None:
        return None, f"passage id {fields[columns['id']]!r} is not an integer"
    return (passage_id, fields[columns["text"]]), ""


# -- pair rules -------------------------------------------------------------------------

def question_is_candidate(in_filtered_list: bool, filtered_only: bool) -> bool:
    """Whether a metadata record is a candidate question.

    **Project rule.** The dataset is PAQ as released: the 64.9M questions of
    ``PAQ.filtered.jsonl``, which passed PAQ's global consistency filter. The metadata
    file describes the same questions, but the filtered list is the authority on which
    questions are in PAQ, so by default a metadata question counts only when it is in the
    list. ``filtered_only=false`` trusts the metadata file alone (for runs without the
    question list).
    """
    return in_filtered_list or not filtered_only


def choose_passages(passage_ids: list[str], rule: str) -> list[str]:
    """The passage ids of one question that give a pair.

    **Project rule.** PAQ merged identical questions generated from several passages
    (and by both answer extractors) into one record whose ``answers`` lists every
    (passage, answer span). The card counts about one pair per question, so by default
    (``first``) a question is paired with the passage of its first ``answers`` entry,
    the one upstream lists first; this depends only on the record, never on processing
    order. ``all`` gives one pair per distinct passage id (in numeric order) for users
    who want every source passage.
    """
    if rule == "all":
        return sorted(set(passage_ids), key=int)
    return passage_ids[:1]


def question_passage_pair(question: dict, passage_id: str, passage_text: str) -> dict:
    """paq: (generated question as released, text of the passage it was generated from)."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, question["question"], passage_text,
                    source_file=question["source_file"],
                    record_id=f"line {question['line']}, passage {passage_id}")


# -- reading ----------------------------------------------------------------------------

def _is_reject(item) -> bool:
    return isinstance(item, beam.pvalue.TaggedOutput)


def _line_reject(reason: str, source_file: str, number: int, detail: str, excerpt):
    """The reject of a line that cannot be parsed: one record read and rejected."""
    return rejected(DATASET, reason, counts_as_read=True,
                    source_file=source_file, record_id=f"line {number}",
                    detail=detail, excerpt=excerpt)


def _counted_line_readers(items):
    """Pass on what a line reader yields; each reject it makes (``bad_encoding``,
    ``bad_json``, ``not_an_object``) counts as one record read."""
    for item in items:
        if _is_reject(item):
            accounting.count_read(DATASET)
        yield item


def read_filtered(stream, source_file: str):
    """Questions of ``PAQ.filtered.jsonl`` as :data:`LISTED` tables."""
    yield from gather_tables(_filtered_records(stream, source_file), LISTED)


def _filtered_records(stream, source_file: str):
    for item in _counted_line_readers(json_lines(stream, DATASET, source_file)):
        if _is_reject(item):
            yield item
            continue
        number, record = item
        question, problem = parse_filtered_line(record)
        if question is None:
            yield _line_reject("malformed_question", source_file, number,
                               f"filtered question list: {problem}", record)
            continue
        yield {"key": text_key(question), "question": question, "source_file": source_file, "line": number}


def read_metadata(stream, source_file: str):
    """Metadata records as :data:`METADATA_RECORDS` tables.

    A record has its ``passage_ids``; a record with a question but no usable passage id
    carries ``reason``/``detail``/``excerpt`` instead, so that it is rejected only when its
    question is a candidate (see :func:`candidate_outcomes`). Lines without a question
    cannot be matched to the list and are rejected here.
    """
    yield from gather_tables(_metadata_records(stream, source_file), METADATA_RECORDS)


def _metadata_records(stream, source_file: str):
    for item in _counted_line_readers(json_lines(stream, DATASET, source_file)):
        if _is_reject(item):
            yield item
            continue
        number, record = item
        parsed, reason, detail = parse_metadata_line(record)
        if reason == "malformed_question":
            yield _line_reject(reason, source_file, number, f"metadata: {detail}", record)
            continue
        question = record["question"]
        yield {"key": text_key(question), "question": question,
               "passage_ids": parsed["passage_ids"] if parsed else None,
               "reason": reason or None, "detail": detail or None,
               "excerpt": None if parsed else _excerpt(record),
               "source_file": source_file, "line": number}


def _excerpt(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)[:EXCERPT_CHARS]


def read_passages(stream, source_file: str):
    """Passages as :data:`PASSAGE_TEXTS` tables; the header line is skipped."""
    yield from gather_tables(_passage_records(stream, source_file), PASSAGE_TEXTS)


def _passage_records(stream, source_file: str):
    columns = dict(zip(PASSAGE_COLUMNS, range(len(PASSAGE_COLUMNS))))
    for item in _counted_line_readers(text_records(stream, DATASET, source_file)):
        if _is_reject(item):
            yield item
            continue
        number, text = item
        if number == 1:
            header = passage_header(text.split("\t"))
            if header is not None:
                columns = header
                continue
        parsed, problem = parse_passage_line(text, columns)
        if parsed is None:
            yield _line_reject("malformed_passage", source_file, number, problem, text[:EXCERPT_CHARS])
            continue
        passage_id, passage_text = parsed
        # Normalised once here, not once per question that uses the passage.
        yield {"key": text_key(passage_id), "passage_id": passage_id, "text": normalize_text(passage_text),
               "line": number}


def read_input(stream, source_file: str, kind: str):
    """``read_file`` of the inputs, read in one step: the tables of the reader of ``kind``
    (:func:`read_metadata`, :func:`read_passages`, :func:`read_filtered`), each tagged
    with it (rejects keep their own tag)."""
    reader = {METADATA: read_metadata, PASSAGES: read_passages}.get(kind, read_filtered)
    return tagged_records(reader(stream, source_file), kind)


def is_filtered_member(member: str) -> bool:
    """Whether a member of ``PAQ.tar.gz`` is the question list (``PAQ/PAQ.filtered.jsonl``);
    ``PAQ/LICENSE`` and the rest are skipped unread."""
    return posixpath.basename(member) == FILTERED_MEMBER


# -- joins ------------------------------------------------------------------------------
# Both joins are :class:`HashJoin`s: every side spilled in runs by the hash of its key, one
# task per hash range; a task groups its own rows by the joined text (bounded by the task's
# size, whatever the input's).

def _rows_by(table: pa.Table, column: str) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        grouped.setdefault(row[column], []).append(row)
    return grouped


def select_candidates(tables: dict, filtered_only: bool, rule: str):
    """:class:`HashJoin` function of the filtered list and the metadata (by question): the
    outcome of :func:`candidate_outcomes` for every question of the task, each candidate
    record as one :data:`QUESTIONS` row per passage :func:`choose_passages` picks.

    The usual case (a listed question with one usable record, the ``first`` passage) is
    decided over the whole task at once; questions without a record, records without a
    usable passage id and the ``all`` rule go record by record.

    Args:
        tables: ``{"listed": LISTED, "metadata": METADATA_RECORDS}``.
        filtered_only: option ``filtered_only`` (see :func:`question_is_candidate`).
        rule: option ``passages`` (see :func:`choose_passages`).
    """
    listed, metadata = tables["listed"], tables["metadata"]
    unanswered = pc.invert(pc.is_in(listed["question"], metadata["question"]))
    in_list = pc.is_in(metadata["question"], listed["question"])
    candidate = in_list if filtered_only else pa.array([True] * metadata.num_rows, pa.bool_())
    skipped = metadata.num_rows - pc.sum(candidate).as_py() if metadata.num_rows else 0
    if skipped:
        accounting.count_read(DATASET, skipped)
        accounting.count_skipped(DATASET, "not_in_filtered_list", skipped)
    simple = pc.and_(candidate, pc.is_null(metadata["reason"]))
    one_by_one = pc.and_(candidate, pc.invert(simple))
    if rule != "first":
        simple, one_by_one = pc.and_(simple, False), candidate
    if pc.any(unanswered).as_py() or pc.any(one_by_one).as_py():
        # Rare: listed questions without a record, records without a passage, rule "all".
        waiting, records = _rows_by(listed.filter(unanswered), "question"), _rows_by(metadata.filter(one_by_one), "question")
        items = (item for question in sorted(waiting.keys() | records.keys())
                 for item in candidate_outcomes(question, waiting.get(question, []),
                                                records.get(question, []), filtered_only=False))
        yield from gather_tables(
            (row for item in items for row in ([item] if _is_reject(item) else _by_passage(item, rule))),
            QUESTIONS)
    chosen = metadata.filter(simple)
    if chosen.num_rows:
        accounting.count_read(DATASET, chosen.num_rows)  # one record per (question, passage)
        first = pc.list_element(chosen["passage_ids"], 0)
        yield pa.table({"key": pa.array([text_key(p) for p in first.to_pylist()], pa.int64()),
                        "passage_id": first, "question": chosen["question"],
                        "source_file": chosen["source_file"], "line": chosen["line"]}, schema=QUESTIONS)


def candidate_outcomes(question: str, listed: list[dict], records: list[dict], filtered_only: bool):
    """Candidate metadata records of one question, or their rejects: a listed question
    without any metadata record is ``no_metadata``; a candidate record without a usable
    passage id is rejected with its reason; records of unlisted questions are skipped."""
    if not records:
        for entry in sorted(listed, key=lambda e: (e["source_file"], e["line"])):
            yield rejected(DATASET, "no_metadata", counts_as_read=True,
                           source_file=entry["source_file"],
                           record_id=f"line {entry['line']}", excerpt=question,
                           detail="question of the filtered list has no record in PAQ.metadata.jsonl")
        return
    if not question_is_candidate(bool(listed), filtered_only):
        accounting.count_read(DATASET, len(records))
        accounting.count_skipped(DATASET, "not_in_filtered_list", len(records))
        return
    for record in sorted(records, key=lambda r: (r["source_file"], r["line"])):
        if record["reason"]:
            yield rejected(DATASET, record["reason"], counts_as_read=True,
                           source_file=record["source_file"],
                           record_id=f"line {record['line']}", detail=record["detail"],
                           excerpt=record["excerpt"])
        else:
            yield record


def _by_passage(record: dict, rule: str):
    chosen = choose_passages(record["passage_ids"], rule)
    accounting.count_read(DATASET, len(chosen))  # one record per (question, passage)
    for passage_id in chosen:
        yield {"key": text_key(passage_id), "passage_id": passage_id, "question": record["question"],
               "source_file": record["source_file"], "line": record["line"]}


def pair_with_passages(tables: dict, passage_file: str):
    """:class:`HashJoin` function of the questions and the passages (by passage id): a row
    per question whose passage is found (:func:`question_passage_pair`, vectorised), the
    rejects of :func:`passage_outcomes` for the others and for repeated passage ids.

    Args:
        tables: ``{"questions": QUESTIONS, "passages": PASSAGE_TEXTS}``.
        passage_file: psgs_w100.tsv as named in rejects.
    """
    passages, questions = tables["passages"], tables["questions"]
    counts = passages.group_by("passage_id", use_threads=False).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))["passage_id"]
    if len(repeated):
        # Rare: the ids given more than once, and their questions, go one by one.
        several = pc.is_in(passages["passage_id"], repeated)
        asked = pc.is_in(questions["passage_id"], repeated)
        by_id = _rows_by(passages.filter(several), "passage_id")
        asking = _rows_by(questions.filter(asked), "passage_id")
        yield from gather_tables(
            item for passage_id in sorted(by_id, key=int)
            for item in passage_outcomes(passage_id, by_id[passage_id], asking.get(passage_id, []),
                                         passage_file))
        passages, questions = passages.filter(pc.invert(several)), questions.filter(pc.invert(asked))
    position = pc.index_in(questions["passage_id"], value_set=passages["passage_id"].combine_chunks())
    found = pc.is_valid(position)
    if not pc.all(found).as_py():
        lost = questions.filter(pc.invert(found)).sort_by([("passage_id", "ascending"), ("source_file", "ascending"),
                                                           ("line", "ascending")])
        for question in lost.to_pylist():
            yield from passage_outcomes(question["passage_id"], [], [question], passage_file)
        questions, position = questions.filter(found), position.filter(found)
    if questions.num_rows:
        yield question_passage_rows(questions, pc.take(passages["text"], position))


def question_passage_rows(questions: pa.Table, texts) -> pa.Table:
    """:func:`question_passage_pair` of every row of a :data:`QUESTIONS` table, given the
    (normalised) text of each one's passage; the questions are normalised here."""
    accounting.count_paired(DATASET, questions.num_rows)
    return mark_normalized(make_rows(
        DATASET, normalize_column(questions["question"]), texts, source_file=questions["source_file"],
        record_id=pc.binary_join_element_wise(
            "line ", pc.cast(questions["line"], pa.string()), ", passage ", questions["passage_id"], "")))


def passage_outcomes(passage_id: str, passages: list[dict], questions: list[dict], passage_file: str):
    """Rows for every question of one passage id; missing and repeated ids are rejects."""
    passages = sorted(passages, key=lambda p: p["line"])
    for extra in passages[1:]:
        # a passage line, a record only as a reject
        yield rejected(DATASET, "duplicate_passage_id", counts_as_read=True,
                       source_file=passage_file,
                       record_id=f"line {extra['line']}", excerpt=extra["text"][:EXCERPT_CHARS],
                       detail=f"passage id {passage_id} already on line {passages[0]['line']}; "
                              "the first is used")
    for question in sorted(questions, key=lambda q: (q["source_file"], q["line"])):
        if not passages:
            yield rejected(DATASET, "passage_missing", source_file=question["source_file"],
                           record_id=f"line {question['line']}, passage {passage_id}",
                           excerpt=question["question"],
                           detail=f"passage {passage_id} is not in psgs_w100.tsv")
        else:
            yield question_passage_pair(question, passage_id, passages[0]["text"])


class Paq(Source):
    name = "paq"
    counts_records = True
    folder = "paq"
    datasets = (DATASET,)
    description = "PAQ generated questions joined to the DPR Wikipedia passages"

    def find(self, ctx: SourceContext) -> PaqInputs:
        return find_inputs([path for path, _size in files.list_dir(ctx.source_dir)])

    def _read_plan(self, ctx: SourceContext, filtered_only: bool) -> tuple[list, list[str]]:
        """The ``(kind, path)`` files to read, and the required files that are missing."""
        found = self.find(ctx)
        wanted = [(METADATA, found.metadata, "PAQ.metadata.jsonl.gz"),
                  (PASSAGES, found.passages, "psgs_w100.tsv.gz")]
        if filtered_only:
            wanted.append((found.questions_kind, found.questions, "PAQ.tar.gz or PAQ.filtered.jsonl"))
        plan = [(kind, path) for kind, path, _name in wanted if path]
        missing = [name for _kind, path, name in wanted if not path]
        return plan, missing

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        plan, _missing = self._read_plan(ctx, ctx.option("filtered_only", True, parse_bool))
        sizes = dict(files.list_dir(ctx.source_dir))
        return sorted((path, sizes[path]) for _kind, path in plan)

    def _layout_rejects(self, ctx: SourceContext, missing: list[str]) -> list[dict]:
        """``missing_file`` for each required file that is absent (with ``--strict`` the
        run stops instead) and ``duplicate_input`` for each copy of an input not read."""
        notes = []
        for name in missing:
            detail = (f"{name} not found under {ctx.relative(ctx.source_dir)}/; "
                      "PAQ pairs need the metadata, the passages and (unless "
                      "paq.filtered_only=false) the filtered question list")
            if ctx.strict:
                raise SourceError(detail)
            notes.append(make_reject(DATASET, "missing_file", source_file=f"{self.folder}/{name}",
                                     detail=detail))
        for ignored, chosen in self.find(ctx).duplicates:
            notes.append(make_reject(DATASET, "duplicate_input", source_file=ctx.relative(ignored),
                                     detail=f"{ctx.relative(ignored)} is another copy of an input; "
                                            f"only {ctx.relative(chosen)} is read"))
        return notes

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        filtered_only = ctx.option("filtered_only", True, parse_bool)
        rule = ctx.option("passages", "first", choices=PASSAGE_RULES)
        plan, missing = self._read_plan(ctx, filtered_only)
        rejects = [layout_rejects(pipeline, "paq/LayoutRejects", self._layout_rejects(ctx, missing))]
        if missing:
            rows = pipeline | "paq/NoRows" >> beam.Create([])
            return SourceOutput(rows={DATASET: rows}, rejects=rejects)
        paths = dict(plan)

        spill_dir = ctx.scratch_dir()

        def runs(pcoll, label: str, schema: pa.Schema):
            return spill_runs(pcoll, f"paq/Spill{label}", files.join(spill_dir, label), "key", schema)

        # Each input is one compressed stream (the metadata alone 16 GB of gzip): with
        # several workers each is cut into blocks by one of them and the blocks are parsed
        # by all. The inputs are read in one step, so that the workers cut them at once.
        questions_kind = FILTERED if FILTERED in paths else ARCHIVE
        kinds = (METADATA, PASSAGES) + ((questions_kind,) if filtered_only else ())
        read = pipeline | "paq/ReadInputs" >> ReadFiles(
            [(paths[kind], kind) for kind in kinds], read_input, input_root=ctx.input_root,
            dataset=DATASET, strict=ctx.strict, members=is_filtered_member, outputs=kinds,
            cut_dir=files.join(spill_dir, "blocks"))
        rejects.append(read[REJECTED])
        metadata, passages = read[METADATA], read[PASSAGES]
        choose = functools.partial(select_candidates, filtered_only=filtered_only, rule=rule)
        if filtered_only:
            listed = read[questions_kind]
            candidates = (
                {"listed": runs(listed, "Listed", LISTED), "metadata": runs(metadata, "Metadata", METADATA_RECORDS)}
                | "paq/KeepListed" >> HashJoin(choose, {"listed": LISTED, "metadata": METADATA_RECORDS}))
        else:
            # Without the list every metadata record is a candidate: no join needed.
            candidates = metadata | "paq/CheckMetadata" >> tables(beam.FlatMap(
                lambda table: choose({"listed": LISTED.empty_table(), "metadata": table}))
            ).with_outputs(REJECTED, main="main")
        rejects.append(candidates[REJECTED])
        passage_file = ctx.relative(next(path for kind, path in plan if kind == PASSAGES))
        joined = (
            {"questions": runs(candidates.main, "Questions", QUESTIONS),
             "passages": runs(passages, "Passages", PASSAGE_TEXTS)}
            | "paq/JoinPassages" >> HashJoin(
                functools.partial(pair_with_passages, passage_file=passage_file),
                {"questions": QUESTIONS, "passages": PASSAGE_TEXTS}))
        rejects.append(joined[REJECTED])
        return SourceOutput(rows={DATASET: joined.main}, rejects=rejects)


SOURCE = Paq()
