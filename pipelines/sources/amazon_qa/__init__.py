"""Amazon question/answer data (Julian McAuley): (product question, answer) pairs.

Files (under ``IN/amazon_qa/``), found by name at any depth below the folder:
    ``qa_<Category>.json.gz``   single-answer release (2016): one record per line,
                                ``{'questionType', 'asin', 'answerTime', 'unixTime',
                                'question', 'answer', 'answerType'?}``
    ``QA_<Category>.json.gz``   multi-answer release (2019): one product per line,
                                ``{'asin', 'questions': [{'questionText', 'answers':
                                [{'answerText', ...}], ...}]}``
The names may also end in ``.json``/``.jsonl`` with or without a compression suffix
(``.gz``, ``.bz2``, ``.xz``, ``.zst``); the compression is always sniffed from the bytes
(a ``.json.gz`` that is plain text is read as it is). Other files are not read.

One category file per release is read: when the same release and category is found more
than once (``qa_Appliances.json.gz`` and an unpacked or converted ``qa_Appliances.json``,
maybe in another subfolder), the copy nearest the folder (then first by path) is read and
every other copy is a reject ``duplicate_file`` naming the one read, so the same records
are never counted twice. ``qa_X`` and ``QA_X`` are different releases and are both read.

Parse (:func:`parse_record`): each line is a Python dict literal (single quotes, ``None``),
not JSON; it is parsed with ``ast.literal_eval``, which accepts literals only: a line
such as ``__import__('os').system(...)`` is a reject ``bad_literal`` and nothing runs.
Strict-JSON copies of the files also circulate, so a line that starts like a JSON object
(``{"``) is parsed as JSON first (:func:`pipelines.engine.read.parse_json`, which gives
what ``json.loads`` gives; it decodes ``\\/`` and surrogate pairs as JSON means them), and
each parser is the other's fallback. A line that is not valid
UTF-8 is a reject ``bad_encoding``; a value that is not a dict ``not_an_object``; a dict
of neither shape ``unknown_record_shape``; missing or non-string question/answer
``missing_field`` / ``bad_field``; a file without any byte is the core reader's
``empty_file``.

Text (:func:`clean_text`): HTML entities are decoded (``&#39;``, ``&amp;``), and text
written by Python 2 as escaped UTF-8 bytes (``'I\\xe2\\x80\\x99m'``, which reads back as
``Iâ\\x80\\x99m``) is repaired when it decodes as UTF-8; whitespace is left to the core.

Pair rule (``docs/corpus-spec.md``): pair = (question, answer), one per answer.
    :func:`single_answer_pairs`  qa_ records: one pair per record
    :func:`multi_answer_pairs`   QA_ records: one pair per answer of every question; a
                                 question without answers is a reject ``no_answer``
The same question and answer repeated on near-identical products (B00004W4UJ /
B00004W4UK) is kept, as upstream has it: each is one answer. Very short answers
('yes.') are kept too.

Records (:mod:`pipelines.corpus.accounting`): a record is one answer, the unit a pair is
made of: a ``qa_`` line, or one answer of a question of a ``QA_`` line. What is rejected
before its answers are reached is one record: a line that cannot be parsed or has an
unknown shape, a ``QA_`` line whose ``questions`` is not a list, a ``QA_`` question that
is malformed or has no answer (``no_answer``), and a ``duplicate_file``. A ``QA_`` line
with an empty ``questions`` list is one record, skipped as ``no_questions`` (a product
nobody asked about holds no candidate).

Documented count: 2,448,839 pairs. The category list of the 2016 release (21 categories)
and its line count are not verified; the manifest reports the difference.

Source options: none.
"""
from __future__ import annotations

import ast
import html
import posixpath
import re
import warnings

import apache_beam as beam

from pipelines.corpus import accounting
from pipelines.corpus.rejects import REJECTED, layout_rejects, make_reject, rejected
from pipelines.corpus.schema import make_row
from pipelines.corpus.source import Source, SourceContext, SourceOutput
from pipelines.engine import ReadFiles, files, parse_json, text_records

DATASET = "amazon_qa"
CATEGORY_FILE = re.compile(
    r"^(?P<release>qa|QA)_(?P<category>.+?)\.jsonl?(?:\.(?:gz|bz2|xz|zst))?$")
_LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)
_HIGH_LATIN1 = re.compile("[\x80-\xff]")


# -- finding the files -----------------------------------------------------------------

def choose_category_files(relative_paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Pick one file per (release, category) among paths relative to the source folder.

    Returns:
        ``(read, duplicates)``: the paths to read, sorted, and ``(duplicate, kept)`` for
        every other copy of a release and category already chosen. The copy nearest the
        folder wins, then the first by path.
    """
    chosen: dict[tuple[str, str], str] = {}
    duplicates = []
    for path in sorted(relative_paths, key=lambda p: (p.count("/"), p)):
        match = CATEGORY_FILE.match(posixpath.basename(path))
        if not match:
            continue
        key = (match.group("release"), match.group("category"))
        if key in chosen:
            duplicates.append((path, chosen[key]))
        else:
            chosen[key] = path
    return sorted(chosen.values()), duplicates


# -- parsing ---------------------------------------------------------------------------

def _literal(text: str):
    with warnings.catch_warnings():
        # Invalid escapes such as "\/" warn in Python >= 3.12; the value is still a literal.
        warnings.simplefilter("ignore")
        return ast.literal_eval(text)


def parse_record(text: str):
    """Parse one line: a Python dict literal, or a JSON object.

    Upstream lines are Python literals (``ast.literal_eval``: literals only, nothing is
    called or evaluated). Lines that start like JSON (``{"``) are tried as JSON
    (:func:`pipelines.engine.read.parse_json`) first, because JSON escapes (``\\/``,
    surrogate pairs) mean something else in Python; each parser is the other's fallback.

    Raises:
        ValueError: the line is neither, with the literal parser's complaint.
    """
    stripped = text.strip()
    looks_json = stripped.startswith('{"')
    try:
        return parse_json(stripped) if looks_json else _literal(stripped)
    except _LITERAL_ERRORS as first:
        try:
            return _literal(stripped) if looks_json else parse_json(stripped)
        except _LITERAL_ERRORS:
            raise ValueError(f"neither a Python literal nor JSON ({type(first).__name__}: "
                             f"{str(first)[:200]})") from None


def repair_byte_escapes(text: str) -> str:
    """Undo UTF-8 bytes that Python 2 wrote as ``\\xNN`` escapes: text whose characters
    are all below U+0100, with some in U+0080..U+00FF, that decodes as UTF-8 once taken
    as Latin-1 bytes. Real Latin-1 text (``café``) does not decode and is kept."""
    if not _HIGH_LATIN1.search(text) or max(map(ord, text)) > 0xFF:
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return text


def clean_text(text: str) -> str:
    """An upstream question or answer: HTML entities decoded, byte escapes repaired."""
    return repair_byte_escapes(html.unescape(text))


# -- pair rules ------------------------------------------------------------------------

def _text_problem(container: dict, key: str) -> tuple[str, str] | None:
    if key not in container:
        return "missing_field", f"no {key!r}"
    if not isinstance(container[key], str):
        return "bad_field", f"{key!r} is a {type(container[key]).__name__}, not a string"
    return None


def single_answer_pairs(record: dict, source_file: str, record_id: str):
    """amazon_qa from a ``qa_`` record: (question, answer), one pair per record."""
    accounting.count_read(DATASET)
    problem = _text_problem(record, "question") or _text_problem(record, "answer")
    if problem:
        yield rejected(DATASET, problem[0], source_file=source_file, record_id=record_id,
                       detail=f"single-answer record: {problem[1]}", excerpt=record)
        return
    accounting.count_paired(DATASET)
    yield make_row(DATASET, clean_text(record["question"]), clean_text(record["answer"]),
                   source_file=source_file, record_id=record_id)


def multi_answer_pairs(record: dict, source_file: str, record_id: str):
    """amazon_qa from a ``QA_`` record: (questionText, answerText), one pair per answer of
    every question. A question without answers is a reject ``no_answer``; a malformed
    question or answer is rejected alone, the rest of the product is kept."""
    questions = record["questions"]
    if not isinstance(questions, list):
        yield rejected(DATASET, "bad_field", counts_as_read=True,
                       source_file=source_file, record_id=record_id,
                       detail=f"'questions' is a {type(questions).__name__}, not a list", excerpt=record)
        return
    if not questions:
        accounting.count_read(DATASET)
        accounting.count_skipped(DATASET, "no_questions")
        return
    for q_number, question in enumerate(questions, start=1):
        q_id = f"{record_id} q{q_number}"
        problem = (("bad_field", "question is not a dict") if not isinstance(question, dict)
                   else _text_problem(question, "questionText"))
        answers = question.get("answers") if isinstance(question, dict) else None
        if problem is None and answers is not None and not isinstance(answers, list):
            problem = ("bad_field", f"'answers' is a {type(answers).__name__}, not a list")
        if problem:
            yield rejected(DATASET, problem[0], counts_as_read=True,
                           source_file=source_file, record_id=q_id,
                           detail=f"multi-answer question: {problem[1]}", excerpt=question)
            continue
        if not answers:
            yield rejected(DATASET, "no_answer", counts_as_read=True,
                           source_file=source_file, record_id=q_id,
                           detail="question without answers", excerpt=question)
            continue
        question_text = clean_text(question["questionText"])
        for a_number, answer in enumerate(answers, start=1):
            a_id = f"{q_id} a{a_number}"
            accounting.count_read(DATASET)
            problem = (("bad_field", "answer is not a dict") if not isinstance(answer, dict)
                       else _text_problem(answer, "answerText"))
            if problem:
                yield rejected(DATASET, problem[0], source_file=source_file, record_id=a_id,
                               detail=f"multi-answer answer: {problem[1]}", excerpt=answer)
                continue
            accounting.count_paired(DATASET)
            yield make_row(DATASET, question_text, clean_text(answer["answerText"]),
                           source_file=source_file, record_id=a_id)


def record_pairs(record, source_file: str, record_id: str):
    """Rows (or rejects) of one parsed line, by its shape: ``questions`` marks the
    multi-answer release, ``question``/``answer`` the single-answer one."""
    if not isinstance(record, dict):
        yield rejected(DATASET, "not_an_object", counts_as_read=True,
                       source_file=source_file, record_id=record_id,
                       detail=f"line is a {type(record).__name__} literal, not a dict", excerpt=repr(record))
    elif "questions" in record:
        yield from multi_answer_pairs(record, source_file, record_id)
    elif "question" in record or "answer" in record:
        yield from single_answer_pairs(record, source_file, record_id)
    else:
        yield rejected(DATASET, "unknown_record_shape", counts_as_read=True,
                       source_file=source_file, record_id=record_id,
                       detail=f"dict with keys {sorted(map(str, record))[:10]}: neither "
                              "'question'/'answer' nor 'questions'", excerpt=record)


def read_category_file(stream, source_file: str):
    """Read one category file: yield its rows and rejects."""
    for item in text_records(stream, DATASET, source_file):
        if isinstance(item, beam.pvalue.TaggedOutput):
            accounting.count_read(DATASET)  # a line that is not UTF-8
            yield item
            continue
        number, text = item
        line_id = f"line {number}"
        try:
            record = parse_record(text)
        except ValueError as exc:
            yield rejected(DATASET, "bad_literal", counts_as_read=True,
                           source_file=source_file, record_id=line_id,
                           detail=str(exc), excerpt=text)
            continue
        asin = record.get("asin") if isinstance(record, dict) else None
        record_id = f"{asin} {line_id}" if isinstance(asin, str) and asin else line_id
        yield from record_pairs(record, source_file, record_id)


def duplicate_file_reject(duplicate: str, kept: str) -> dict:
    """The reject of a second copy of a category file, which is not read."""
    return make_reject(DATASET, "duplicate_file", source_file=duplicate,
                       detail=f"another copy of the same release and category is read: {kept}")


class AmazonQA(Source):
    name = "amazon_qa"
    counts_records = True
    folder = "amazon_qa"
    datasets = (DATASET,)
    description = "Amazon QA, per-category qa_/QA_ files of Python dict literals"

    def find_files(self, ctx: SourceContext) -> tuple[list[str], list[tuple[str, str]]]:
        """The category files to read (full paths) and the duplicate copies left out
        (as ``(duplicate, kept)`` paths relative to the input root)."""
        listed = [files.relative_to(path, ctx.source_dir) for path, _size in files.list_dir(ctx.source_dir)]
        read, duplicates = choose_category_files(listed)
        folder = ctx.relative(ctx.source_dir)
        return ([files.join(ctx.source_dir, path) for path in read],
                [(posixpath.join(folder, d), posixpath.join(folder, k)) for d, k in duplicates])

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        read = set(self.find_files(ctx)[0])
        return [(path, size) for path, size in files.list_dir(ctx.source_dir) if path in read]

    def expand(self, pipeline: beam.Pipeline, ctx: SourceContext) -> SourceOutput:
        paths, duplicates = self.find_files(ctx)
        # Category files differ widely in size: with several workers each is cut into blocks
        # of whole lines, so that the biggest does not hold up the build on one worker.
        read = pipeline | "amazon_qa/ReadCategories" >> ReadFiles(
            paths, read_category_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict,
            cut_lines=True)
        rejects = [read[REJECTED]]
        if duplicates:
            rejects.append(layout_rejects(pipeline, "amazon_qa/DuplicateFiles",
                                          [duplicate_file_reject(*pair) for pair in duplicates]))
        return SourceOutput(rows={DATASET: read.records}, rejects=rejects)


SOURCE = AmazonQA()
