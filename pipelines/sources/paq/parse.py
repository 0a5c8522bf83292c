"""Reading the PAQ files: which file is which input, the parsing of their lines, the
readers of each kind and the Arrow tables they give (see the package docstring)."""
from __future__ import annotations

import csv
import json
import posixpath
import re
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.pvalue import TaggedOutput

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_column
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import ROWS_PER_TABLE, gather_columns
from pipelines.engine import json_lines, tagged_records, text_key, text_records

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
# The lookup tables whose rows are counted as input rows (accounting.count_input_rows):
# the passages, looked up by the questions, and the list, looked up by the metadata.
SOURCE_NAME = "paq"
PASSAGES_TABLE, LIST_TABLE = "psgs_w100.tsv", FILTERED_MEMBER
PASSAGE_COLUMNS = ("id", "text", "title")  # DPR's order, used when there is no header
EXCERPT_CHARS = 500

# What the inputs become: Arrow tables keyed by ``key``, the 64-bit key of what they are
# joined on: :func:`pipelines.engine.join.text_key` of the question, or
# :func:`passage_key` of the canonical passage id.
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
    """Pick one file per kind among ``paths`` (see the package docstring)."""
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


# Digits of a passage id that always fit an int64.
_ID_DIGITS = 18


def passage_key(passage_id: str) -> int:
    """The join key of a canonical passage id: the id itself when it has at most 18
    digits (every DPR id has), else :func:`~pipelines.engine.join.text_key` of its text.
    A join compares the ids themselves, so a key shared by two ids only shares a task."""
    return int(passage_id) if len(passage_id) <= _ID_DIGITS else text_key(passage_id)


def passage_keys(passage_ids) -> pa.Array:
    """:func:`passage_key` of every id of a string column (no nulls), converted by Arrow
    when every id is short enough."""
    if isinstance(passage_ids, pa.ChunkedArray):
        passage_ids = passage_ids.combine_chunks()
    if len(passage_ids) and pc.all(pc.less_equal(pc.binary_length(passage_ids), _ID_DIGITS)).as_py():
        return pc.cast(passage_ids, pa.int64())
    return pa.array([passage_key(p) for p in passage_ids.to_pylist()], pa.int64())


# -- reading ----------------------------------------------------------------------------

def _is_reject(item) -> bool:
    return isinstance(item, beam.pvalue.TaggedOutput)


def _line_reject(reason: str, source_file: str, number: int, detail: str, excerpt):
    """The reject of a line that cannot be parsed: one record read and rejected."""
    return rejected(DATASET, reason, counts_as_read=True,
                    source_file=source_file, record_id=f"line {number}",
                    detail=detail, excerpt=excerpt)


def _counted(reject):
    """A reject a line reader made (``bad_encoding``, ``bad_json``, ``not_an_object``),
    counted as one record read."""
    accounting.count_read(DATASET)
    return reject


# Each reader appends a line's values to a list per column (no dict per line) and yields
# its rejects, and None when they hold a table's lines; :func:`gather_columns` makes the
# tables.

def read_filtered(stream, source_file: str):
    """Questions of ``PAQ.filtered.jsonl`` as :data:`LISTED` tables."""
    columns = ([], [], [])  # key, question, line

    def table(keys, questions, lines) -> pa.Table:
        return pa.table({"key": keys, "question": questions, "source_file": [source_file] * len(keys),
                         "line": lines}, schema=LISTED)

    return gather_columns(_filtered_records(stream, source_file, columns), columns, table)


def _filtered_records(stream, source_file: str, columns: tuple):
    keys, questions, lines = columns
    for item in json_lines(stream, DATASET, source_file):
        if isinstance(item, TaggedOutput):
            yield _counted(item)
            continue
        number, record = item
        question, problem = parse_filtered_line(record)
        if question is None:
            yield _line_reject("malformed_question", source_file, number,
                               f"filtered question list: {problem}", record)
            continue
        keys.append(text_key(question))
        questions.append(question)
        lines.append(number)
        if len(lines) >= ROWS_PER_TABLE:
            yield None


def read_metadata(stream, source_file: str):
    """Metadata records as :data:`METADATA_RECORDS` tables.

    A record has its ``passage_ids``; a record with a question but no usable passage id
    carries ``reason``/``detail``/``excerpt`` instead, so that it is rejected only when its
    question is a candidate (see :func:`rules.candidate_outcomes`). Lines without a
    question cannot be matched to the list and are rejected here.
    """
    columns = ([], [], [], [], [], [], [])  # key, question, passage_ids, reason, detail, excerpt, line

    def table(keys, questions, passage_ids, reasons, details, excerpts, lines) -> pa.Table:
        return pa.table({"key": keys, "question": questions, "passage_ids": passage_ids, "reason": reasons,
                         "detail": details, "excerpt": excerpts, "source_file": [source_file] * len(keys),
                         "line": lines}, schema=METADATA_RECORDS)

    return gather_columns(_metadata_records(stream, source_file, columns), columns, table)


def _metadata_records(stream, source_file: str, columns: tuple):
    keys, questions, passage_ids, reasons, details, excerpts, lines = columns
    for item in json_lines(stream, DATASET, source_file):
        if isinstance(item, TaggedOutput):
            yield _counted(item)
            continue
        number, record = item
        parsed, reason, detail = parse_metadata_line(record)
        if reason == "malformed_question":
            yield _line_reject(reason, source_file, number, f"metadata: {detail}", record)
            continue
        question = record["question"]
        keys.append(text_key(question))
        questions.append(question)
        passage_ids.append(parsed["passage_ids"] if parsed else None)
        reasons.append(reason or None)
        details.append(detail or None)
        excerpts.append(None if parsed else _excerpt(record))
        lines.append(number)
        if len(lines) >= ROWS_PER_TABLE:
            yield None


def _excerpt(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)[:EXCERPT_CHARS]


def read_passages(stream, source_file: str):
    """Passages as :data:`PASSAGE_TEXTS` tables; the header line is skipped. The texts are
    normalised here, a table at a time (once per passage, not once per question that
    uses it)."""
    columns = ([], [], [])  # passage_id, text, line

    def table(passage_ids, texts, lines) -> pa.Table:
        passage_ids = pa.array(passage_ids, pa.string())
        return pa.table({"key": passage_keys(passage_ids), "passage_id": passage_ids,
                         "text": normalize_column(pa.array(texts, pa.string())), "line": lines},
                        schema=PASSAGE_TEXTS)

    return gather_columns(_passage_records(stream, source_file, columns), columns, table)


def _passage_records(stream, source_file: str, columns: tuple):
    passage_ids, texts, lines = columns
    header = dict(zip(PASSAGE_COLUMNS, range(len(PASSAGE_COLUMNS))))
    for item in text_records(stream, DATASET, source_file):
        if isinstance(item, TaggedOutput):
            yield _counted(item)
            continue
        number, text = item
        if number == 1:
            found = passage_header(text.split("\t"))
            if found is not None:
                header = found
                continue
        parsed, problem = parse_passage_line(text, header)
        if parsed is None:
            yield _line_reject("malformed_passage", source_file, number, problem, text[:EXCERPT_CHARS])
            continue
        passage_id, passage_text = parsed
        passage_ids.append(passage_id)
        texts.append(passage_text)
        lines.append(number)
        if len(lines) >= ROWS_PER_TABLE:
            yield None


def read_input(stream, source_file: str, kind: str):
    """``read_file`` of the inputs, read in one step: the tables of the reader of ``kind``
    (:func:`read_metadata`, :func:`read_passages`, :func:`read_filtered`), each tagged
    with it (rejects keep their own tag)."""
    reader = {METADATA: read_metadata, PASSAGES: read_passages}.get(kind, read_filtered)
    items = reader(stream, source_file)
    if kind != METADATA:
        table = PASSAGES_TABLE if kind == PASSAGES else LIST_TABLE
        items = accounting.counting_rejected_rows(items, SOURCE_NAME, table)
    return tagged_records(items, kind)


def is_filtered_member(member: str) -> bool:
    """Whether a member of ``PAQ.tar.gz`` is the question list (``PAQ/PAQ.filtered.jsonl``);
    ``PAQ/LICENSE`` and the rest are skipped unread."""
    return posixpath.basename(member) == FILTERED_MEMBER
