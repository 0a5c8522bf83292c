"""Natural Questions: (query, Wikipedia paragraph that is its long answer) pairs.

Files (under ``IN/natural_questions/``, anywhere below it, as published by Google):
    ``v1.0-simplified_simplified-nq-train.jsonl.gz``  the simplified train set (also
                                        named ``simplified-nq-train.jsonl[.gz]``)
    ``nq-train-00.jsonl.gz`` ...        the full release, 50 train parts
    ``nq-train-49.jsonl.gz``            (``v1.0/train/``)

Files may be plain or compressed (sniffed from the bytes). Only train files are inputs:
the dev parts ``nq-dev-XX.jsonl.gz`` (7,830 examples with five annotations each, not in
the training corpus), ``nq-train-sample.jsonl.gz`` / ``nq-dev-sample.jsonl.gz``,
``simplified-nq-test.jsonl``, the NQ-open files (``NQ-open.*.jsonl``: questions and
short answers without any page) and the KILT files (``nq-*-kilt.jsonl``) are other
datasets or splits; they are recognised by name, skipped without a reject and never
listed as inputs. A line of a train-named file that has neither ``document_text`` nor
``document_tokens`` (an NQ-open or KILT line saved under a train name) is rejected as
``unknown_format``. When no train file is found the run records one ``missing_file``
reject (with ``--strict`` it stops).

Parse: one JSON object per line; lines are several MB (a whole Wikipedia page) and are
streamed without any line-length limit. The format is detected per line by its keys:
    simplified  ``document_text`` = tokens joined by single spaces (HTML tags such as
                ``<P>``, ``<Table>`` are tokens); the long answer is the token span
                ``[start_token, end_token)`` of ``document_text.split(' ')``.
    full        ``document_tokens`` = ``[{token, start_byte, end_byte, html_token}]``;
                the same token span; ``html_token`` marks the HTML tokens, and blanks
                inside a token become ``_`` exactly as Google's simplification script
                does, so both formats give the same text for the same example.
``example_id`` (int64) is kept exactly, as text.

Pair rules, one function each:
    :func:`long_answer_span`    the long answer of an example (first annotation with one)
    :func:`paragraph_text`      only ``<P>`` long answers qualify; HTML tokens removed
    :func:`question_paragraph_pair`  natural_questions: (question_text, paragraph text)

Documented count: 100,231 pairs from the 307,373 train examples. About half the
examples have no long answer (``no_long_answer``) and a further third of the rest are
tables or lists (``not_paragraph``); the paragraph rule lands near the card's number.
Both rejects are counted: they are candidates that do not qualify.

An example that occurs more than once (the simplified file and the full parts hold the
same 307,373 examples, so a folder with both would otherwise count each twice) gives one
outcome: all outcomes are grouped by ``example_id`` (a Beam GroupByKey) and the first
by (simplified before full, file, line) is kept; the others are ``duplicate_example``
rejects.

Other rejects: ``bad_encoding``, ``bad_json``, ``not_an_object`` (unparseable lines),
``malformed_example`` (missing or mistyped fields, e.g. a token without ``token``),
``bad_span`` (a long answer outside the page); from the core's reader ``empty_file`` (a
file without any byte) and ``unreadable_file``.

Records (:mod:`pipelines.corpus.accounting`): a record is one line of a train file (one
example). After the de-duplication by id it ends as a pair or one reject
(``duplicate_example`` for the copies not kept). No record is skipped: files of other
splits are never read.

This source has no options.
"""
from __future__ import annotations

import posixpath
import re

import apache_beam as beam

from pipelines.corpus import accounting
from pipelines.corpus.rejects import REJECTED, layout_rejects, make_reject, rejected
from pipelines.corpus.schema import make_row, web_link
from pipelines.corpus.source import Source, SourceContext, SourceError, SourceOutput
from pipelines.engine import ReadFiles, files, json_lines

DATASET = "natural_questions"
SIMPLIFIED, FULL = "simplified", "full"

_COMPRESSION_SUFFIX = r"(?:\.(?:gz|bz2|xz|zst))?"
_TRAIN_NAMES = (
    (re.compile(rf"^(?:v1\.0-simplified_)?simplified-nq-train\.jsonl{_COMPRESSION_SUFFIX}$"), SIMPLIFIED),
    (re.compile(rf"^nq-train-\d+\.jsonl{_COMPRESSION_SUFFIX}$"), FULL),
)
# An HTML token of the simplified text: "<P>", "</Td>", "<H2>" (attributes are never kept).
_HTML_TOKEN = re.compile(r"^</?[A-Za-z][A-Za-z0-9]*\s*/?>$")
_PARAGRAPH_TAG = re.compile(r"^<p\s*>$", re.I)
EXCERPT_CHARS = 300


# -- finding the inputs -----------------------------------------------------------------

def train_file_kind(name: str) -> str | None:
    """``simplified`` or ``full`` for a train file name, ``None`` for anything else."""
    for pattern, kind in _TRAIN_NAMES:
        if pattern.match(name):
            return kind
    return None


def find_train_files(paths: list[str]) -> list[tuple[str, str]]:
    """The train files among ``paths`` as sorted ``(kind, path)``."""
    found = []
    for path in paths:
        kind = train_file_kind(posixpath.basename(path))
        if kind is not None:
            found.append((kind, path))
    return sorted(found, key=lambda item: (item[0] != SIMPLIFIED, item[1]))


# -- parsing ----------------------------------------------------------------------------

class MalformedExample(ValueError):
    """A line that is an NQ example in shape but has a missing or mistyped field."""


def example_format(example: dict) -> str | None:
    """``simplified``, ``full`` or ``None`` (not an NQ train example) from the keys."""
    if "document_text" in example:
        return SIMPLIFIED
    if "document_tokens" in example:
        return FULL
    return None


def example_id(example: dict) -> str | None:
    """The example id as exact decimal text, or ``None`` when it is missing."""
    value = example.get("example_id")
    if isinstance(value, bool) or not isinstance(value, (int, str)) or str(value).strip() == "":
        return None
    return str(value).strip()


def _as_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedExample(f"{what} is not an integer: {value!r}")
    return value


def long_answer_span(example: dict) -> tuple[int, int] | None:
    """The long answer as a token span ``(start, end)``, or ``None`` when there is none.

    Train examples have one annotation; where there are several the first one that
    has a long answer counts (upstream order, so the choice depends only on the line).
    A long answer is absent when its tokens are -1 (NQ writes all fields -1).
    """
    annotations = example.get("annotations")
    if not isinstance(annotations, list):
        raise MalformedExample("'annotations' is not a list")
    for index, annotation in enumerate(annotations):
        long_answer = annotation.get("long_answer") if isinstance(annotation, dict) else None
        if not isinstance(long_answer, dict):
            raise MalformedExample(f"annotations[{index}] has no 'long_answer' object")
        start = _as_int(long_answer.get("start_token"), f"annotations[{index}].long_answer.start_token")
        end = _as_int(long_answer.get("end_token"), f"annotations[{index}].long_answer.end_token")
        if start >= 0 and end >= 0:
            return start, end
    return None


def simplified_tokens(document_text) -> list[tuple[str, bool]]:
    """``(token, is_html)`` of a simplified ``document_text``: split on single spaces only."""
    if not isinstance(document_text, str):
        raise MalformedExample("'document_text' is not a string")
    return [(token, bool(_HTML_TOKEN.match(token))) for token in document_text.split(" ")]


def full_tokens(document_tokens, start: int, end: int) -> list[tuple[str, bool]]:
    """``(token, is_html)`` of ``document_tokens[start:end]``; blanks inside a token
    become ``_`` as in Google's ``simplify_nq_example``."""
    if not isinstance(document_tokens, list):
        raise MalformedExample("'document_tokens' is not a list")
    out = []
    for index in range(start, min(end, len(document_tokens))):
        token = document_tokens[index]
        text = token.get("token") if isinstance(token, dict) else None
        is_html = token.get("html_token") if isinstance(token, dict) else None
        if not isinstance(text, str) or not isinstance(is_html, bool):
            raise MalformedExample(f"document_tokens[{index}] lacks a 'token' string or an "
                                   "'html_token' boolean")
        out.append((text.replace(" ", "_"), is_html))
    return out


def span_tokens(example: dict, kind: str, start: int, end: int) -> list[tuple[str, bool]] | None:
    """The tokens of ``[start, end)``, or ``None`` when the span is not inside the page."""
    if kind == SIMPLIFIED:
        tokens = simplified_tokens(example.get("document_text"))
        size = len(tokens)
    else:
        document_tokens = example.get("document_tokens")
        size = len(document_tokens) if isinstance(document_tokens, list) else 0
        tokens = None
    if not 0 <= start < end <= size:
        return None
    return tokens[start:end] if tokens is not None else full_tokens(example.get("document_tokens"), start, end)


# -- pair rules -------------------------------------------------------------------------

def paragraph_text(tokens: list[tuple[str, bool]]) -> tuple[str | None, str]:
    """The text of a long answer when it is a paragraph.

    **Project rule.** A long answer qualifies only when it is a paragraph: its first
    token is the ``<P>`` tag. Tables (``<Table>``), lists (``<Ul>``, ``<Ol>``, ``<Dl>``)
    and other blocks are not running text and are rejected as ``not_paragraph``. The
    text is the non-HTML tokens joined by single spaces, as NQ tokenised them (so
    punctuation stays space-separated, "in 1998 , by"); tags inside the paragraph
    (links, bold, nested lists) are dropped, their words kept.

    Returns:
        ``(text, "")`` or ``(None, tag)`` with the tag the long answer starts with.
    """
    first = tokens[0][0] if tokens else ""
    if not (tokens and tokens[0][1] and _PARAGRAPH_TAG.match(first)):
        return None, first
    return " ".join(token for token, is_html in tokens if not is_html), ""


def question_paragraph_pair(question: str, paragraph: str, *, source_file: str,
                            record_id: str, document_url=None) -> dict:
    """natural_questions: (question_text as released, long-answer paragraph text), linked
    to the Wikipedia revision the paragraph is from: the example's ``document_url``, whose
    ``&`` the release writes as ``&amp;`` (decoded here, so that the link keeps its ``oldid``)."""
    link = web_link(document_url.replace("&amp;", "&")) if isinstance(document_url, str) else None
    return make_row(DATASET, question, paragraph, source_file=source_file, record_id=record_id,
                    attribution_url=link)


# -- reading ----------------------------------------------------------------------------

def _summary(example: dict) -> dict:
    # The excerpt of a reject: the fields that identify the example, never the page.
    return {key: example.get(key) for key in ("example_id", "question_text", "document_url",
                                                "annotations") if key in example}


def example_outcome(example: dict, source_file: str) -> tuple[str, dict]:
    """``("row", row)`` or ``("reject", reject dict)`` for one NQ example.

    The reject dict is not yet counted: :func:`_emit` counts it once the example has
    survived the de-duplication by id.
    """
    record_id = example_id(example) or ""

    def reject(reason, detail):
        return "reject", make_reject(DATASET, reason, source_file=source_file, record_id=record_id,
                                     detail=detail, excerpt=_summary(example))

    kind = example_format(example)
    if kind is None:
        return reject("unknown_format", "neither 'document_text' (simplified) nor "
                      "'document_tokens' (full): not a Natural Questions train example "
                      "(NQ-open and KILT lines are not inputs of this dataset)")
    question = example.get("question_text")
    if not isinstance(question, str) or not question.strip() or not record_id:
        return reject("malformed_example", "no 'question_text' string or no 'example_id'")
    try:
        span = long_answer_span(example)
        if span is None:
            return reject("no_long_answer", "the annotator found no long answer")
        tokens = span_tokens(example, kind, *span)
        if tokens is None:
            return reject("bad_span", f"long answer tokens [{span[0]}, {span[1]}) are not inside the page")
    except MalformedExample as exc:
        return reject("malformed_example", str(exc))
    text, tag = paragraph_text(tokens)
    if text is None:
        return reject("not_paragraph", f"the long answer starts with {tag[:EXCERPT_CHARS]!r}, not <P>")
    return "row", question_paragraph_pair(question, text, source_file=source_file,
                                          record_id=record_id, document_url=example.get("document_url"))


def read_train_file(stream, source_file: str, rank: int):
    """``read_file`` for :class:`ReadFiles`, with the file's ``rank`` (0 for the simplified
    file, 1 for the full parts) as context. Outcomes of one train file keyed by example id:
    ``(example_id, (rank, source_file, line, outcome))``; lines without an id that fail
    to parse are yielded as counted rejects."""
    for item in json_lines(stream, DATASET, source_file):
        accounting.count_read(DATASET)
        if isinstance(item, beam.pvalue.TaggedOutput):
            yield item
            continue
        number, example = item
        outcome = example_outcome(example, source_file)
        key = example_id(example) or f"{source_file}#line {number}"
        if outcome[0] == "reject" and not outcome[1]["record_id"]:
            outcome[1]["record_id"] = f"line {number}"
        yield key, (rank, source_file, number, outcome)


def _emit(outcome):
    kind, value = outcome
    if kind == "row":
        accounting.count_paired(DATASET)  # only now: a duplicate's row is never paired
        yield value
    else:
        yield rejected(DATASET, value["reason"], source_file=value["source_file"],
                       record_id=value["record_id"], detail=value["detail"], excerpt=value["excerpt"])


def _first_per_example(element):
    """One outcome per example id: simplified before full, then file and line order."""
    example, outcomes = element
    ordered = sorted(outcomes, key=lambda o: o[:3])
    yield from _emit(ordered[0][3])
    kept = ordered[0]
    for _rank, source_file, line, _outcome in ordered[1:]:
        yield rejected(DATASET, "duplicate_example", source_file=source_file, record_id=example,
                       detail=f"example {example} (line {line}) was already read from "
                              f"{kept[1]} line {kept[2]}; the first is kept")


class NaturalQuestions(Source):
    name = "natural_questions"
    counts_records = True
    folder = "natural_questions"
    datasets = (DATASET,)
    description = "Natural Questions train (simplified or full), paragraph long answers"

    def train_files(self, ctx: SourceContext) -> list[tuple[str, str]]:
        return find_train_files([path for path, _size in files.list_dir(ctx.source_dir)])

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        sizes = dict(files.list_dir(ctx.source_dir))
        return sorted((path, sizes[path]) for _kind, path in self.train_files(ctx))

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        train = self.train_files(ctx)
        if not train:
            return self._no_train_file(pipeline, ctx)
        ranked = [(path, 0 if kind == SIMPLIFIED else 1) for kind, path in train]
        # The simplified train file is one gzip of about 17 GB of JSON lines: with several
        # workers it is cut into blocks of whole lines that all of them parse.
        read = pipeline | "natural_questions/Read" >> ReadFiles(
            ranked, read_train_file, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict,
            cut_lines=True)
        kept = (
            read.records
            | "natural_questions/GroupByExample" >> beam.GroupByKey()
            | "natural_questions/FirstPerExample" >> beam.FlatMap(_first_per_example)
            .with_outputs(REJECTED, main="rows")
        )
        return SourceOutput(rows={DATASET: kept.rows}, rejects=[read[REJECTED], kept[REJECTED]])

    @staticmethod
    def _no_train_file(pipeline, ctx: SourceContext) -> SourceOutput:
        """No rows and one ``missing_file`` reject (with ``--strict`` the run stops)."""
        detail = (f"no Natural Questions train file under {ctx.relative(ctx.source_dir)}/ "
                  "(expected v1.0-simplified_simplified-nq-train.jsonl.gz or "
                  "nq-train-XX.jsonl.gz; NQ-open, KILT and dev files are not inputs)")
        if ctx.strict:
            raise SourceError(detail)
        missing = make_reject(DATASET, "missing_file", source_file=ctx.relative(ctx.source_dir),
                              detail=detail)
        rows = pipeline | "natural_questions/NoRows" >> beam.Create([])
        return SourceOutput(rows={DATASET: rows},
                            rejects=[layout_rejects(pipeline, "natural_questions/MissingFile", [missing])])


SOURCE = NaturalQuestions()
