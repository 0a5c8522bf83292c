"""Yahoo! Answers topic classification CSV: title/answer, question/answer, title/question.

Files (under ``IN/yahoo_answers/``, as published by Zhang et al. 2015):
    ``yahoo_answers_csv.tgz``           the release archive; its members
                                        ``yahoo_answers_csv/train.csv`` (and ``test.csv``)
                                        are streamed out of it without extracting
    ``yahoo_answers_csv/train.csv``     the unpacked folder (``test.csv``, ``classes.txt``
                                        and ``readme.txt`` beside it); a CSV file may also
                                        be gzip/bz2/xz/zstd-compressed (sniffed from the
                                        bytes, whatever its name)

Any regular file named ``*.tgz``, ``*.tar``, ``*.tar.gz``, ``*.tar.bz2``, ``*.tar.xz`` or
``*.zip`` is read as an archive; a file of that name that is not an archive becomes an
``unreadable_file`` reject. ``classes.txt`` and ``readme.txt`` are not read (the class is
not part of any pair).

Parse: CSV without a header, four columns ``class index (1-10), title, content, best
answer``; every field is quoted and inner quotes are doubled. Newlines inside a text are
stored as the two characters backslash and ``n``; they are turned back into newlines
after CSV parsing (so a literal ``\\n`` typed by a user is read as a line break too; the
core collapses it to a space either way). Answers (and some questions) carry HTML such as
``<br />`` and entities: every text goes through
:func:`pipelines.corpus.normalize.html_to_text`. The file is read line by line and each
line is decoded on its own, so one bad byte costs one record, not the rest of the file;
a record whose quotes are unbalanced at the end of a line continues on the next line (a
field with a real line break), until the next line that starts a new record
(``"<digits>","``).

Rejects while parsing (counted once, under the first selected dataset): ``bad_encoding``
(a line that is not UTF-8), ``malformed_row`` (unbalanced quotes, not four fields, a
class index that is not 1-10), ``blank_file`` (a CSV of blank lines only); from the
core's reader ``empty_file`` (a CSV without any byte), ``no_member`` (an archive without
a selected CSV member), ``unreadable_file``.

Pair rules (``docs/corpus-spec.md``), one function each, all from the same rows:
    :func:`title_answer_pair`     yahoo_answers_title_answer: (title, best answer)
    :func:`question_answer_pair`  yahoo_answers_question_answer: (content, best answer)
    :func:`title_question_pair`   yahoo_answers_title_question: (title, content)
A row whose needed fields are empty after normalisation is skipped by that dataset, as the
corpus spec says, and counted by reason (``empty_title``, ``empty_content``,
``empty_answer``): the record is sound, it only has nothing for that pair (about half of
the questions have no content), so it is not written to the dead-letter output. A pair
whose two texts are the same after normalisation is rejected as ``identical_texts`` (see
:func:`pair_problem`).

Records (:mod:`pipelines.corpus.accounting`), per dataset: a record is one CSV record. Every
parsed record is read by each selected dataset and ends there as its pair, a skip
(``empty_*``) or a reject (``identical_texts``). A record that cannot be parsed is one
record read and rejected under the first selected dataset only, with the parse rejects.
``test.csv`` is never read unless asked for.

Documented counts: 1,198,260 / 681,164 / 659,896 rows, all below the 1,400,000 train rows,
so only ``train.csv`` is read by default; ``test.csv`` (60,000 rows, the benchmark's test
split) is not a candidate and is skipped without rejects unless asked for. The card's
title/question count is *smaller* than its question/answer count, which empty fields
alone cannot explain (every row has a title); dropping pairs whose title and content are
the same text (users often repeat the title as the content) is this project's rule and
the best available explanation of that gap.

Source options (``--source-option yahoo_answers.<key>=<value>``):
    ``splits``   comma-separated CSV files to read, of ``train``, ``test`` (default
                 ``train``).
"""
from __future__ import annotations

import csv
import functools
import io
import posixpath
import re

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.corpus import accounting
from pipelines.corpus.normalize import html_to_text
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import gather_tables, make_row, make_rows
from pipelines.corpus.source import Source, SourceContext, SourceOutput, names_from
from pipelines.engine import ReadFiles, files, tables, text_lines, unless_blank

TITLE_ANSWER = "yahoo_answers_title_answer"
QUESTION_ANSWER = "yahoo_answers_question_answer"
TITLE_QUESTION = "yahoo_answers_title_question"
DATASETS = (TITLE_ANSWER, QUESTION_ANSWER, TITLE_QUESTION)

SPLITS = ("train", "test")
DEFAULT_SPLITS = frozenset({"train"})
ARCHIVE, CSV = "archive", "csv"
CLASS_INDEXES = frozenset(str(n) for n in range(1, 11))
# A record may span lines only while its quotes are open; beyond this many bytes it is
# taken as broken and rejected, so a stray quote cannot swallow the rest of a file.
MAX_RECORD_BYTES = 1 << 20

_ARCHIVE_SUFFIXES = (".tgz", ".tar", ".tar.gz", ".tar.bz2", ".tar.xz", ".zip")
_COMPRESSION_SUFFIXES = ("", ".gz", ".bz2", ".xz", ".zst")
_RECORD_START = re.compile(r'^"\d+","')
_ESCAPED_NEWLINE = "\\n"

# Which fields each dataset pairs, and the reject reason when a field is empty.
_FIELDS = {
    TITLE_ANSWER: ("title", "answer"),
    QUESTION_ANSWER: ("content", "answer"),
    TITLE_QUESTION: ("title", "content"),
}


# -- parsing ---------------------------------------------------------------------------

def csv_split(basename: str) -> str | None:
    """The split a CSV file holds (``train`` or ``test``) from its name, or ``None`` for
    any other file. Compression suffixes are allowed: ``train.csv.gz`` is ``train``."""
    for split in SPLITS:
        if basename in {f"{split}.csv{suffix}" for suffix in _COMPRESSION_SUFFIXES}:
            return split
    return None


def unescape_newlines(text: str) -> str:
    """Turn the two characters backslash + ``n`` back into a newline."""
    return text.replace(_ESCAPED_NEWLINE, "\n")


def parse_fields(record: str) -> list[str]:
    """The fields of one CSV record (possibly spanning lines). Raises ``csv.Error`` on
    quoting that ``csv`` in strict mode refuses."""
    rows = list(csv.reader(io.StringIO(record, newline=""), strict=True))
    if len(rows) != 1:
        raise csv.Error(f"record holds {len(rows)} CSV rows")
    return rows[0]


def qa_from_fields(fields: list[str]) -> dict:
    """Title, content and best answer of a parsed record, as plain text (newlines
    restored, HTML rendered, whitespace collapsed). Raises ``ValueError`` for a record
    that is not a Yahoo Answers row."""
    if len(fields) != 4:
        raise ValueError(f"expected 4 fields (class, title, content, best answer), found {len(fields)}")
    if fields[0].strip() not in CLASS_INDEXES:
        raise ValueError(f"class index {fields[0][:20]!r} is not 1-10")
    title, content, answer = (html_to_text(unescape_newlines(field)) for field in fields[1:])
    return {"title": title, "content": content, "answer": answer}


def _quotes_balanced(text: str) -> bool:
    # Every field is quoted and inner quotes doubled, so a complete record has an even count.
    return text.count('"') % 2 == 0


def iter_records(stream):
    """Group the lines of a Yahoo Answers CSV into records.

    Yields ``(line_number, text, raw)`` per record, ``line_number`` being the record's
    first line; ``text`` is ``None`` for a line that is not UTF-8 and ``""`` for a
    record whose quotes never close (``raw`` then holds its bytes).
    """
    pending, pending_raw, pending_line = None, b"", 0
    for number, text, raw in text_lines(stream):
        if text is None:
            if pending is not None:
                yield pending_line, "", pending_raw
                pending = None
            yield number, None, raw
            continue
        if pending is not None:
            if _RECORD_START.match(text) or len(pending_raw) + len(raw) > MAX_RECORD_BYTES:
                yield pending_line, "", pending_raw
                pending = None
            else:
                pending, pending_raw = pending + "\n" + text, pending_raw + b"\n" + raw
                if _quotes_balanced(pending):
                    yield pending_line, pending, pending_raw
                    pending = None
                continue
        if not text.strip():
            continue
        if _quotes_balanced(text):
            yield number, text, raw
        else:
            pending, pending_raw, pending_line = text, raw, number
    if pending is not None:
        yield pending_line, "", pending_raw


# A parsed record: its three texts (normalised) and provenance.
QA_RECORDS = pa.schema([(name, pa.string()) for name in ("title", "content", "answer", "source_file",
                                                          "record_id")])


def read_csv(stream, source_file: str, reject_dataset: str):
    """Parsed records of one CSV file in :data:`QA_RECORDS` tables, or tagged rejects for
    ``reject_dataset``; a file of blank lines only is a ``blank_file`` reject."""
    return unless_blank(gather_tables(_csv_rows(stream, source_file, reject_dataset), QA_RECORDS, 8192),
                        stream, reject_dataset, source_file)


def _csv_rows(stream, source_file: str, reject_dataset: str):
    for number, text, raw in iter_records(stream):
        record_id = f"line {number}"
        if text is None or text == "":
            accounting.count_read(reject_dataset)  # a record that is rejected below
        if text is None:
            yield rejected(reject_dataset, "bad_encoding", source_file=source_file,
                           record_id=record_id, detail="line is not valid UTF-8", excerpt=raw)
            continue
        if text == "":
            yield rejected(reject_dataset, "malformed_row", source_file=source_file,
                           record_id=record_id, excerpt=raw,
                           detail="a quoted field is never closed")
            continue
        try:
            qa = qa_from_fields(parse_fields(text))
        except (csv.Error, ValueError) as exc:
            yield rejected(reject_dataset, "malformed_row", counts_as_read=True,
                           source_file=source_file,
                           record_id=record_id, detail=str(exc), excerpt=text)
            continue
        yield {**qa, "source_file": source_file, "record_id": record_id}


# -- pair rules ------------------------------------------------------------------------

# Pair problems that are skips (the spec skips rows with an empty needed field), not rejects.
_SKIPS = frozenset({"empty_title", "empty_content", "empty_answer"})


def pair_problem(anchor_field: str, anchor: str, positive_field: str, positive: str) -> str | None:
    """Why a (anchor, positive) pair of one row is not kept, or ``None``.

    The corpus spec skips rows whose needed fields are empty after normalisation
    (``empty_<field>``). Project rule: a pair whose two texts are identical is dropped too
    (``identical_texts``): it teaches nothing, and it happens when the content repeats the
    title, which is how the documented title/question count can be below the
    question/answer count.
    """
    if not anchor:
        return f"empty_{anchor_field}"
    if not positive:
        return f"empty_{positive_field}"
    if anchor == positive:
        return "identical_texts"
    return None


def title_answer_pair(qa: dict) -> dict:
    """yahoo_answers_title_answer: (question title, best answer)."""
    return make_row(TITLE_ANSWER, qa["title"], qa["answer"], source_file=qa["source_file"],
                    record_id=qa["record_id"])


def question_answer_pair(qa: dict) -> dict:
    """yahoo_answers_question_answer: (question content, best answer). The content is the
    text the asker wrote under the title; the title is not prepended."""
    return make_row(QUESTION_ANSWER, qa["content"], qa["answer"], source_file=qa["source_file"],
                    record_id=qa["record_id"])


def title_question_pair(qa: dict) -> dict:
    """yahoo_answers_title_question: (question title, question content)."""
    return make_row(TITLE_QUESTION, qa["title"], qa["content"], source_file=qa["source_file"],
                    record_id=qa["record_id"])


_PAIR_RULES = {
    TITLE_ANSWER: title_answer_pair,
    QUESTION_ANSWER: question_answer_pair,
    TITLE_QUESTION: title_question_pair,
}


def pair_or_reject(qa: dict, dataset: str):
    """The row of ``dataset`` for one parsed record, or its reject; nothing (a counted
    skip) when a needed field is empty."""
    anchor_field, positive_field = _FIELDS[dataset]
    problem = pair_problem(anchor_field, qa[anchor_field], positive_field, qa[positive_field])
    accounting.count_read(dataset)
    if problem is None:
        accounting.count_paired(dataset)
        yield _PAIR_RULES[dataset](qa)
        return
    if problem in _SKIPS:
        accounting.count_skipped(dataset, problem)
        return
    yield rejected(dataset, problem, source_file=qa["source_file"], record_id=qa["record_id"],
                   detail=f"pair not kept: {problem}",
                   excerpt={"title": qa["title"], "content": qa["content"][:300],
                            "answer": qa["answer"][:300]})


def pair_table(records: pa.Table, dataset: str):
    """:func:`pair_or_reject` of every record of a :data:`QA_RECORDS` table, decided for the
    whole table at once: the rows of the records whose pair is kept, as one table, the
    skips counted by reason, and the rejects (``identical_texts``, one by one, by
    :func:`pair_or_reject` itself)."""
    anchor_field, positive_field = _FIELDS[dataset]
    anchor, positive = records[anchor_field], records[positive_field]
    no_anchor = pc.equal(pc.binary_length(anchor), 0)
    no_positive = pc.and_(pc.invert(no_anchor), pc.equal(pc.binary_length(positive), 0))
    skipped = pc.or_(no_anchor, no_positive)
    for reason, mask in ((f"empty_{anchor_field}", no_anchor), (f"empty_{positive_field}", no_positive)):
        count = pc.sum(mask).as_py() or 0
        if count:
            accounting.count_read(dataset, count)
            accounting.count_skipped(dataset, reason, count)
    identical = pc.and_(pc.invert(skipped), pc.equal(anchor, positive))
    for qa in records.filter(identical).to_pylist():
        yield from pair_or_reject(qa, dataset)
    kept = records.filter(pc.invert(pc.or_(skipped, identical)))
    if kept.num_rows == 0:
        return
    accounting.count_read(dataset, kept.num_rows)
    accounting.count_paired(dataset, kept.num_rows)
    yield make_rows(dataset, kept[anchor_field], kept[positive_field],
                                    source_file=kept["source_file"], record_id=kept["record_id"])


# -- Beam transforms --------------------------------------------------------------------

def is_archive_name(basename: str) -> bool:
    return basename.lower().endswith(_ARCHIVE_SUFFIXES)


def is_selected_csv(splits: frozenset, member: str) -> bool:
    """Whether an archive member is a CSV file of a selected split."""
    return csv_split(posixpath.basename(member)) in splits


_RECORD_START_BYTES = re.compile(rb'^"\d+","')


def starts_record(line: bytes) -> bool:
    """Whether a line of the CSV can be a record's first (``"<class>","``): a block of a
    cut file begins only with such a line, never inside a record that spans lines."""
    return _RECORD_START_BYTES.match(line) is not None


class ReadInput:
    """``read_file`` for :class:`ReadFiles`: one CSV file, or one CSV member of an archive,
    with the file's kind (``archive`` or ``csv``, from its name) as context.

    Args:
        reject_dataset: the dataset parse rejects are counted under.
    """

    def __init__(self, reject_dataset: str):
        self.reject_dataset = reject_dataset

    def __call__(self, stream, source_file: str, kind: str):
        if kind == ARCHIVE and "!" not in source_file:
            # ReadFiles opens archives by their bytes; a file named like one that is not
            # an archive reaches here whole, and is not taken for a CSV.
            raise files.BadInputFile(f"{source_file}: named like an archive, but it is not one")
        return read_csv(stream, source_file, self.reject_dataset)


parse_splits = names_from(SPLITS)


class YahooAnswers(Source):
    name = "yahoo_answers"
    counts_records = True
    folder = "yahoo_answers"
    datasets = DATASETS
    description = "Yahoo! Answers topic classification CSV (Zhang et al. 2015)"

    def find_inputs(self, ctx: SourceContext) -> list[tuple[str, str]]:
        """The files to read, as ``(path, kind)``; kind is ``archive`` or ``csv``."""
        splits = ctx.option("splits", DEFAULT_SPLITS, parse_splits)
        found = []
        for path, _size in files.list_dir(ctx.source_dir):
            basename = posixpath.basename(path)
            if is_archive_name(basename):
                found.append((path, ARCHIVE))
            elif csv_split(basename) in splits:
                found.append((path, CSV))
        return sorted(found)

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        sizes = dict(files.list_dir(ctx.source_dir))
        return [(path, sizes[path]) for path, _kind in self.find_inputs(ctx)]

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        splits = ctx.option("splits", DEFAULT_SPLITS, parse_splits)
        wanted = [d for d in DATASETS if d in ctx.datasets]
        read = pipeline | "yahoo_answers/Parse" >> ReadFiles(
            self.find_inputs(ctx), ReadInput(wanted[0]), input_root=ctx.input_root,
            dataset=wanted[0], strict=ctx.strict, members=functools.partial(is_selected_csv, splits),
            output_type=pa.Table, cut_lines=True,
            starts_record=starts_record)
        rows, rejects = {}, [read[REJECTED]]
        for dataset in wanted:
            paired = read.records | f"{dataset}/Pair" >> tables(beam.FlatMap(
                pair_table, dataset)).with_outputs(REJECTED, main="rows")
            rows[dataset] = paired.rows
            rejects.append(paired[REJECTED])
        # Texts are rendered and normalised where they are read (qa_from_fields).
        return SourceOutput(rows=rows, rejects=rejects, normalized=frozenset(rows))


SOURCE = YahooAnswers()
