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
its text without the title.

Pair rules, one function each:
    :func:`question_is_candidate`   which metadata records are candidates: those whose
                                    question is in ``PAQ.filtered.jsonl`` (option
                                    ``filtered_only``)
    :func:`choose_passages`         which passage(s) of a question give a pair (option
                                    ``passages``)
    :func:`question_passage_pair`   paq: (question, passage text)

Joins: the filtered list restricts the metadata through a CoGroupByKey keyed by the
question text, and questions meet their passages in a CoGroupByKey keyed by passage id.
Nothing is held in a dict; psgs_w100.tsv (13 GB) is only ever streamed.

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
Records (:mod:`pipelines.core.accounting`): a record is one (question, passage) candidate,
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

import apache_beam as beam

from pipelines.core import accounting, files
from pipelines.core.readers import ReadFiles, json_lines, text_records
from pipelines.core.rejects import REJECTED, layout_rejects, make_reject, rejected
from pipelines.core.schema import make_row
from pipelines.core.source import Source, SourceContext, SourceError, SourceOutput, parse_bool

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
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return str(int(value.strip()))
    return None


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
    """Questions of ``PAQ.filtered.jsonl`` as ``(question, {"source_file", "line"})``."""
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
        yield question, {"source_file": source_file, "line": number}


def read_metadata(stream, source_file: str):
    """Metadata records as ``(question, record)``.

    ``record`` is ``{"question", "passage_ids", "source_file", "line"}``; a record with a
    question but no usable passage id carries ``reason``/``detail`` instead, so that it is
    rejected only when its question is a candidate (see :func:`_restrict_to_filtered`).
    Lines without a question cannot be matched to the list and are rejected here.
    """
    for item in _counted_line_readers(json_lines(stream, DATASET, source_file)):
        if _is_reject(item):
            yield item
            continue
        number, record = item
        parsed, reason, detail = parse_metadata_line(record)
        if reason == "malformed_question":
            yield _line_reject(reason, source_file, number, f"metadata: {detail}", record)
            continue
        where = {"source_file": source_file, "line": number}
        if parsed is None:
            yield record["question"], {"question": record["question"], "reason": reason,
                                       "detail": detail, "excerpt": _excerpt(record), **where}
            continue
        yield parsed["question"], {**parsed, **where}


def _excerpt(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False)[:EXCERPT_CHARS]


def read_passages(stream, source_file: str):
    """Passages as ``(passage id, {"text", "line"})``; the header line is skipped."""
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
        yield passage_id, {"text": passage_text, "line": number}


def is_filtered_member(member: str) -> bool:
    """Whether a member of ``PAQ.tar.gz`` is the question list (``PAQ/PAQ.filtered.jsonl``);
    ``PAQ/LICENSE`` and the rest are skipped unread."""
    return posixpath.basename(member) == FILTERED_MEMBER


# -- joins ------------------------------------------------------------------------------

def _metadata_outcome(record: dict):
    """A candidate metadata record, or its reject when it has no usable passage id."""
    if "reason" in record:
        yield rejected(DATASET, record["reason"], counts_as_read=True,
                       source_file=record["source_file"],
                       record_id=f"line {record['line']}", detail=record["detail"],
                       excerpt=record["excerpt"])
    else:
        yield record


def _restrict_to_filtered(element, filtered_only: bool):
    """Candidate metadata records of one question; a listed question without any metadata
    record is a reject."""
    question, grouped = element
    listed, records = list(grouped["listed"]), list(grouped["metadata"])
    if not records:
        for entry in sorted(listed, key=lambda e: (e["source_file"], e["line"])):
            yield rejected(DATASET, "no_metadata", counts_as_read=True,
                           source_file=entry["source_file"],
                           record_id=f"line {entry['line']}", excerpt=question,
                           detail="question of the filtered list has no record in PAQ.metadata.jsonl")
        return
    if question_is_candidate(bool(listed), filtered_only):
        for record in sorted(records, key=lambda r: (r["source_file"], r["line"])):
            yield from _metadata_outcome(record)
    else:
        accounting.count_read(DATASET, len(records))
        accounting.count_skipped(DATASET, "not_in_filtered_list", len(records))


def _by_passage(record: dict, rule: str):
    question = {"question": record["question"], "source_file": record["source_file"],
                "line": record["line"]}
    chosen = choose_passages(record["passage_ids"], rule)
    accounting.count_read(DATASET, len(chosen))  # one record per (question, passage)
    for passage_id in chosen:
        yield passage_id, question


def _pair_with_passage(element, passage_file: str):
    """Rows for every question of one passage id; missing and repeated ids are rejects."""
    passage_id, grouped = element
    passages = sorted(grouped["passage"], key=lambda p: p["line"])
    questions = sorted(grouped["question"], key=lambda q: (q["source_file"], q["line"]))
    for extra in passages[1:]:
        # a passage line, a record only as a reject
        yield rejected(DATASET, "duplicate_passage_id", counts_as_read=True,
                       source_file=passage_file,
                       record_id=f"line {extra['line']}", excerpt=extra["text"][:EXCERPT_CHARS],
                       detail=f"passage id {passage_id} already on line {passages[0]['line']}; "
                              "the first is used")
    for question in questions:
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

        def read(label, kind, read_file):
            result = pipeline | f"paq/Read{label}" >> ReadFiles(
                [paths[kind]], read_file, input_root=ctx.input_root, dataset=DATASET,
                strict=ctx.strict, members=is_filtered_member)
            rejects.append(result[REJECTED])
            return result.records

        metadata = read("Metadata", METADATA, read_metadata)
        passages = read("Passages", PASSAGES, read_passages)
        if filtered_only:
            questions_kind = FILTERED if FILTERED in paths else ARCHIVE
            listed = read("Filtered", questions_kind, read_filtered)
            restricted = (
                {"listed": listed, "metadata": metadata}
                | "paq/JoinFilteredList" >> beam.CoGroupByKey()
                | "paq/KeepListed" >> beam.FlatMap(_restrict_to_filtered, filtered_only)
                .with_outputs(REJECTED, main="records"))
            rejects.append(restricted[REJECTED])
            candidates = restricted.records
        else:
            everything = (metadata
                          | "paq/DropQuestionKey" >> beam.Values()
                          | "paq/CheckMetadata" >> beam.FlatMap(_metadata_outcome)
                          .with_outputs(REJECTED, main="records"))
            rejects.append(everything[REJECTED])
            candidates = everything.records
        by_passage = candidates | "paq/KeyByPassage" >> beam.FlatMap(_by_passage, rule)
        passage_file = ctx.relative(next(path for kind, path in plan if kind == PASSAGES))
        joined = (
            {"question": by_passage, "passage": passages}
            | "paq/JoinPassages" >> beam.CoGroupByKey()
            | "paq/Pair" >> beam.FlatMap(_pair_with_passage, passage_file)
            .with_outputs(REJECTED, main="rows"))
        rejects.append(joined[REJECTED])
        return SourceOutput(rows={DATASET: joined.rows}, rejects=rejects)


SOURCE = Paq()
