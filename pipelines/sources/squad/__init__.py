"""SQuAD: (question, context paragraph) pairs for answerable questions.

Files (under ``IN/squad_v2/``, as published on the SQuAD explorer):
    ``train-v2.0.json``   SQuAD 2.0 train, one JSON document (~40 MB, 130,319 questions,
                          about 86,821 of them answerable)
    ``train-v1.1.json``   SQuAD 1.1 train (87,599 questions, all answerable); accepted too
    ``dev-v2.0.json``, ``dev-v1.1.json``  the dev sets: read only with ``splits=train,dev``
Any of them may be compressed (gzip/bz2/xz/zstd, sniffed from the bytes, whatever the
name says); other files in the folder are not read.

Version: v1.1 and v2.0 share most train questions (same ids), so one run reads one
version only (option ``version``). By default (``auto``) that is v1.1 when its train file
is present, because the documented count (87,599) is v1.1 train, and v2.0 otherwise.

Parse: one file is one element: it is parsed whole (:func:`read_json_document`), which is
fine at ~40 MB and lets a document without a ``data`` list be told apart; a file that is
not JSON or truncated becomes an ``unreadable_file`` reject, one without any byte an
``empty_file`` reject (both from the core's reader). Then ``data[].paragraphs[].qas[]``
is walked:
    ``malformed_file``       the document has no ``data`` list
    ``malformed_article``    an article is not an object or has no ``paragraphs`` list
    ``malformed_paragraph``  a paragraph is not an object, its ``context`` is not a
                             string or its ``qas`` is not a list (one reject for the
                             paragraph, which stands for all its questions)
    ``malformed_question``   a question entry is not an object, or its ``id``,
                             ``question``, ``answers`` or ``is_impossible`` has the
                             wrong type
    ``unanswerable``         ``is_impossible`` is true (v2.0): not a pair by definition,
                             counted so the gap between 130,319 and the row count is
                             visible
    ``no_answer``            a question marked answerable with an empty ``answers`` list
Empty questions or contexts are left to the core's normalisation (``anchor_empty``,
``positive_empty``).

Records (:mod:`pipelines.corpus.accounting`): a record is one ``qas`` entry (a question).
A document, article or paragraph rejected as malformed stands for the questions it
holds and counts as one record read and rejected. Every question read ends as a pair or
one of the rejects above; no record is skipped.

Pair rule (``docs/corpus-spec.md``), one function:
    :func:`question_context_pair`  squad: (question, context paragraph)

Documented count: 87,599 = SQuAD v1.1 train, which this source gives exactly from
``train-v1.1.json``. From ``train-v2.0.json`` it gives the answerable questions (about
86,821); the registry notes the discrepancy.

Source options (``--source-option squad.<key>=<value>``):
    ``version``  ``auto`` (default), ``v1.1`` or ``v2.0``: which release's files to read.
    ``splits``   comma-separated splits to read, default ``train`` (the documented count
                 is train); ``train,dev`` adds the dev set.
"""
from __future__ import annotations

import re
from urllib.parse import quote, unquote

from pipelines.corpus import accounting
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import make_row
from pipelines.corpus.source import Source, SourceContext, SourceOutput, names_from
from pipelines.engine import ReadFiles, files, read_json_document, stream_is_empty

DATASET = "squad"
VERSIONS = ("auto", "v1.1", "v2.0")
SPLITS = ("train", "dev")
DEFAULT_SPLITS = frozenset({"train"})

_FILE_NAME = re.compile(
    r"^(?P<split>train|dev)-v(?P<version>1\.1|2\.0)\.json(?:\.(?:gz|bz2|xz|zst))?$")


def parse_file_name(name: str) -> tuple[str, str] | None:
    """``(split, version)`` of a SQuAD file name (``train-v2.0.json`` -> ``("train",
    "v2.0")``), or ``None`` for any other file."""
    match = _FILE_NAME.match(name)
    return (match.group("split"), "v" + match.group("version")) if match else None


parse_splits = names_from(SPLITS)


# -- pair rule -------------------------------------------------------------------------

def question_problem(qa) -> tuple[str | None, str]:
    """Why a ``qas`` entry gives no pair: ``(reason, detail)``, or ``(None, "")``.

    A question is answerable when ``is_impossible`` is false or absent (v1.1 has no such
    key) and it has at least one answer. Unanswerable SQuAD 2.0 questions have no answer
    span in the paragraph, so the paragraph is not a positive for them.
    """
    if not isinstance(qa, dict):
        return "malformed_question", "question entry is not an object"
    if not isinstance(qa.get("id"), str) or not qa["id"]:
        return "malformed_question", "question without a string id"
    if not isinstance(qa.get("question"), str):
        return "malformed_question", "question text is not a string"
    impossible = qa.get("is_impossible", False)
    if not isinstance(impossible, bool):
        return "malformed_question", f"is_impossible is {impossible!r}, not a boolean"
    if not isinstance(qa.get("answers"), list):
        return "malformed_question", "answers is not a list"
    if impossible:
        return "unanswerable", "is_impossible is true"
    if not qa["answers"]:
        return "no_answer", "answerable question with an empty answers list"
    return None, ""


def question_context_pair(question: str, context: str, *, source_file: str, record_id: str,
                          article_title=None) -> dict:
    """squad: (question, its context paragraph), linked to the paragraph's Wikipedia article
    (:func:`wikipedia_link` of the article's ``title``).

    The paragraph the question was written about, which holds its answer span; the
    answer itself is not part of the pair.
    """
    accounting.count_paired(DATASET)
    return make_row(DATASET, question, context, source_file=source_file, record_id=record_id,
                    attribution_url=wikipedia_link(article_title))


def wikipedia_link(title) -> str | None:
    """The English Wikipedia article of a SQuAD article ``title`` (``University_of_Notre_Dame``,
    percent-encoded in some releases): ``https://en.wikipedia.org/wiki/<title>``; ``None``
    for a title that is not a non-empty string."""
    if not isinstance(title, str) or not title.strip():
        return None
    name = unquote(title.strip()).replace(" ", "_")
    return "https://en.wikipedia.org/wiki/" + quote(name, safe="/:(),'!")


# -- reading -----------------------------------------------------------------------------

def _reject(reason, source_file, record_id, detail, excerpt=None):
    """The tagged reject of one record (a question, or a malformed container standing for
    its questions), counted as read where it is decided."""
    return rejected(DATASET, reason, counts_as_read=True,
                    source_file=source_file, record_id=record_id,
                    detail=detail, excerpt=excerpt)


def _paragraph_rows(paragraph, source_file: str, where: str, article_title=None):
    if (not isinstance(paragraph, dict) or not isinstance(paragraph.get("context"), str)
            or not isinstance(paragraph.get("qas"), list)):
        yield _reject("malformed_paragraph", source_file, where,
                      "paragraph without a string context and a qas list", paragraph)
        return
    for number, qa in enumerate(paragraph["qas"]):
        record_id = qa.get("id") if isinstance(qa, dict) and isinstance(qa.get("id"), str) else ""
        reason, detail = question_problem(qa)
        if reason is not None:
            yield _reject(reason, source_file, record_id or f"{where} qas[{number}]", detail, qa)
            continue
        accounting.count_read(DATASET)
        yield question_context_pair(qa["question"], paragraph["context"],
                                    source_file=source_file, record_id=record_id, article_title=article_title)


def read_squad_file(stream, source_file: str):
    """``read_file`` for :class:`ReadFiles`: rows and rejects of one SQuAD document."""
    if stream_is_empty(stream):
        return  # ReadFiles records the file as empty_file
    document = read_json_document(stream)
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        yield _reject("malformed_file", source_file, "",
                      "the document is not an object with a 'data' list")
        return
    for a, article in enumerate(document["data"]):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            yield _reject("malformed_article", source_file, f"data[{a}]",
                          "article without a 'paragraphs' list", article)
            continue
        for p, paragraph in enumerate(article["paragraphs"]):
            yield from _paragraph_rows(paragraph, source_file, f"data[{a}].paragraphs[{p}]",
                                       article.get("title"))


class Squad(Source):
    name = "squad"
    counts_records = True
    folder = "squad_v2"
    datasets = (DATASET,)
    description = "SQuAD train (v2.0 answerable questions, or v1.1), question/paragraph pairs"

    def find_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        """The SQuAD files of the chosen version and splits, as ``(path, size)``."""
        version = ctx.option("version", "auto", choices=VERSIONS)
        splits = ctx.option("splits", DEFAULT_SPLITS, parse_splits)
        found = []
        for path, size in files.list_dir(ctx.source_dir):
            parsed = parse_file_name(path.replace("\\", "/").rsplit("/", 1)[-1])
            if parsed:
                found.append((parsed, path, size))
        if version == "auto":
            has_v11_train = any(p == ("train", "v1.1") for p, _path, _size in found)
            version = "v1.1" if has_v11_train else "v2.0"
        return [(path, size) for (split, v), path, size in found if v == version and split in splits]

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        return self.find_files(ctx)

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        read = pipeline | "squad/ReadDocuments" >> ReadFiles(
            [path for path, _size in self.find_files(ctx)], read_squad_file,
            input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict)
        return SourceOutput(rows={DATASET: read.records}, rejects=[read[REJECTED]])


SOURCE = Squad()
