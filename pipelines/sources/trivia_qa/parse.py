"""Reading the TriviaQA question files: which files they are, their records cut out one at
a time, each record checked (see the package docstring)."""
from __future__ import annotations

import re

from pipelines.corpus import accounting
from pipelines.corpus.rejects import rejected
from pipelines.engine import files, parse_json, stream_is_empty, text_lines

from .rules import DATASET, normalize_answer

WIKIPEDIA, WEB = "wikipedia", "web"

RECORD_START = b"        {"
RECORD_END = b"        }"
_COMPRESSED = r"(?:\.(?:gz|bz2|xz|zst))?"
_RC_FILE = re.compile(rf"^(?:web|wikipedia)-(?P<split>train|dev)\.json{_COMPRESSED}$")
_UNFILTERED_FILE = re.compile(rf"^unfiltered-web-(?P<split>train|dev)\.json{_COMPRESSED}$")


# -- reading the question files ------------------------------------------------------------

def iter_record_texts(stream):
    """The records of a pretty-printed TriviaQA question file, one at a time.

    Not :func:`pipelines.engine.read.json_items` (``"Data.item"``): that parses the file
    as one document, so a single record with a JSON error or a bad byte would end the
    file there, while here each record is parsed on its own and only that record is
    rejected (``bad_json``, ``bad_encoding``); the records after it are still read.

    Yields:
        ``(first_line_number, raw_bytes)`` for each record (without the trailing comma).
    Raises:
        EOFError: a record is still open at the end of the file; its ``lineno`` attribute
            is the line where it started. The records before it have been yielded, and
            :class:`~pipelines.engine.ReadFiles` records the file as ``unreadable_file``
            at that line.
    """
    lines, start = None, 0
    for number, _text, raw in text_lines(stream):
        if lines is None:
            if raw == RECORD_START:
                lines, start = [raw], number
            continue
        lines.append(raw)
        if raw.startswith(RECORD_END):
            yield start, b"\n".join(lines).rstrip(b",")
            lines = None
    if lines is not None:
        error = EOFError(f"record starting on line {start} is not closed at the end of the file")
        error.lineno = start
        raise error


def _evidence_refs(record: dict) -> list[tuple[str, str, int]] | None:
    """``(kind, Filename, order)`` of every evidence entry; ``None`` when malformed."""
    refs = []
    for key, kind in (("EntityPages", WIKIPEDIA), ("SearchResults", WEB)):
        entries = record.get(key, [])
        if not isinstance(entries, list):
            return None
        for position, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("Filename"), str):
                continue
            rank = entry.get("Rank")
            order = rank if kind == WEB and isinstance(rank, int) else position
            refs.append((kind, entry["Filename"], order))
    return refs


def answer_aliases(answer: dict) -> list[str]:
    """Every distinct normalised form of the answer: aliases, normalised aliases, value
    and matched entity name, normalised again by :func:`rules.normalize_answer`."""
    forms = []
    for key in ("Aliases", "NormalizedAliases"):
        values = answer.get(key)
        if isinstance(values, list):
            forms.extend(v for v in values if isinstance(v, str))
    for key in ("Value", "NormalizedValue", "MatchedWikiEntityName", "NormalizedMatchedWikiEntityName"):
        if isinstance(answer.get(key), str):
            forms.append(answer[key])
    return sorted({" ".join(normalize_answer(f)) for f in forms} - {""})


def parse_record(record, split: str) -> tuple[dict | None, str | None, str]:
    """Check one question record: ``(question, None, "")`` or ``(None, reason, detail)``.

    ``question`` has ``qid``, ``question``, ``aliases`` and ``refs``.
    """
    if not isinstance(record, dict):
        return None, "not_an_object", "record is JSON but not an object"
    qid, text = record.get("QuestionId"), record.get("Question")
    if not isinstance(qid, str) or not qid or not isinstance(text, str):
        return None, "malformed_record", "QuestionId or Question is missing or not a string"
    refs = _evidence_refs(record)
    if refs is None:
        return None, "malformed_record", "EntityPages or SearchResults is not a list"
    answer = record.get("Answer")
    if not isinstance(answer, dict):
        return None, "missing_answer", f"a {split} record without an Answer object"
    aliases = answer_aliases(answer)
    if not aliases:
        return None, "no_answer_aliases", "no answer alias is left after normalisation"
    return {"qid": qid, "question": text, "aliases": aliases, "refs": refs}, None, ""


class ReadQuestionFile:
    """``read_file`` for :class:`~pipelines.engine.ReadFiles`: the questions of one TriviaQA
    question file.

    Args:
        evidence_roots: per question file (relative to the input root) the evidence
            folder its ``Filename``s resolve against.
    """

    def __init__(self, evidence_roots: dict[str, str]):
        self.evidence_roots = evidence_roots

    def __call__(self, stream, source_file: str):
        evidence_root = self.evidence_roots[source_file]
        split = "dev" if "-dev." in source_file.rsplit("/", 1)[-1] else "train"
        has_bytes = not stream_is_empty(stream)
        records = 0
        for line, raw in iter_record_texts(stream):
            records += 1
            yield from self._record(line, raw, source_file, split, evidence_root)
        if has_bytes and not records:
            yield rejected(DATASET, "malformed_file", source_file=source_file, counts_as_read=True,
                           detail="no line of exactly 8 spaces and '{' starts a record: "
                                  "not the pretty-printed TriviaQA release layout")

    @staticmethod
    def _record(line, raw, source_file, split, evidence_root):
        where = f"line {line}"
        accounting.count_read(DATASET)
        try:
            record = parse_json(raw.decode("utf-8"))
        except UnicodeDecodeError:
            yield rejected(DATASET, "bad_encoding", source_file=source_file, record_id=where,
                           detail="record is not valid UTF-8", excerpt=raw)
            return
        except ValueError as exc:
            yield rejected(DATASET, "bad_json", source_file=source_file, record_id=where,
                           detail=f"record is not valid JSON: {exc}", excerpt=raw)
            return
        question, reason, detail = parse_record(record, split)
        if question is None:
            qid = record.get("QuestionId") if isinstance(record, dict) else None
            yield rejected(DATASET, reason, source_file=source_file,
                           record_id=qid if isinstance(qid, str) and qid else where,
                           detail=detail, excerpt=raw)
            return
        question["refs"] = [(kind, name, order, files.join(evidence_root, kind, name))
                            for kind, name, order in question["refs"]]
        question["source_file"] = source_file
        yield question
