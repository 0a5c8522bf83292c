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

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_text
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import gather_tables
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
PASSAGE_COLUMNS = ("id", "text", "title")  # DPR's order, used when there is no header
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
    question is a candidate (see :func:`rules.candidate_outcomes`). Lines without a
    question cannot be matched to the list and are rejected here.
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
