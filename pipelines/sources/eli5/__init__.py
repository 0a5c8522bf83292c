"""ELI5 (Reddit r/explainlikeimfive): (question title, answer) pairs.

Files (under ``IN/eli5/``, any folder depth), three published record formats:
    HF ``eli5`` JSON lines          ``{"q_id", "title", "selftext", "document", "subreddit",
                                    "answers": {"a_id": [...], "text": [...], "score": [...]},
                                    "title_urls", "selftext_urls", "answers_urls"}``, answers
                                    column-oriented and sorted by score (e.g. exports named
                                    ``train_eli5.jsonl``)
    ELI5-Category                   ``eli5-category-{train,validation-1,validation-2,test}.json.gz``:
                                    one JSON *array* of records of the same shape (plus
                                    ``category``; answers also carry ``text_urls``)
    KILT ELI5                       ``eli5-{train,dev,test_without_answers}-kilt.jsonl``:
                                    ``{"id", "input": title, "output": [{"answer", "meta":
                                    {"score"}}, ..., {"provenance": [...]}]}``
Files whose names end in ``.json`` or ``.jsonl`` (optionally ``.gz``/``.bz2``/``.xz``/
``.zst``) are read; others are not. Compression is sniffed from the bytes (the
ELI5-Category mirror ships plain JSON named ``.json.gz``), and so is the layout: a file
whose first character is ``[`` is a JSON array, streamed element by element with ijson
(:func:`pipelines.engine.read.json_items`), never loaded whole; a file starting with
``{`` is JSON lines. The record format is recognised
per record (``input``/``output`` is KILT, ``q_id``/``answers`` the HF shape).

Splits: a file's split comes from its name (``test`` -> test; ``dev``, ``val``,
``valid``, ``validation`` -> validation; anything else, including a name without a
split, -> train). Only ``train`` is read by default: the documented 325,475 pairs is
about 1.19 pairs per question of the 272,634 ELI5 train questions, and the validation
and test questions are the benchmark's held-out sets. Files of other splits are not
candidates and are skipped without rejects (option ``splits``).

Duplicates: the same question can come in several files (ELI5-Category overlaps HF
ELI5; KILT re-publishes it). Questions are keyed by their Reddit id (``q_id``/``id``) and
grouped with a Beam ``GroupByKey``; the copy kept is the first by format (HF ELI5,
ELI5-Category, KILT), then file name, then position; the others are
``duplicate_question`` rejects. Each question's rows are worked out before the shuffle,
so only the chosen answers travel through it.

Text (:func:`clean_text`): HTML entities decoded (HF replaced ``&amp;`` by `` & `` only
partly; ELI5-Category keeps ``&amp;``/``&gt;``), markdown quote markers (``>`` at the
start of a line) removed, and the URL placeholders (``_URL_0_`` in HF ELI5 and some KILT
lines, `` URL_0 `` in ELI5-Category and KILT dev) removed by default: a markdown link
``[text]( URL_0 )`` keeps its text, a bare placeholder disappears. Option
``url_tokens=keep`` leaves them as they are. The core then collapses whitespace.

Pair rule (:func:`select_answers`, project rule): per question, the best answer (highest
score), plus further answers whose score is at least ``min_relative_score`` (0.5) of the
best one's, up to ``max_answers`` (2) per question. On the 20 real ELI5-Category
questions of the upstream excerpt this gives 24 pairs, 1.2 per question, which on the
272,634 train questions is about 327k, near the documented 325,475 (best answer only
would give at most 272,634, 16% short). The calibration rests on a small excerpt; the
full build's count tells how close it is. Answers that are not chosen
are not candidates (no rejects). Before choosing: ``[deleted]``/``[removed]`` answers are
``deleted_answer`` rejects, answers empty after cleaning ``empty_answer``, a repeat of a
better answer's text ``duplicate_answer``. Questions: ``empty_title``, ``no_answer``
(no answer at all, as in KILT's test file), ``other_subreddit`` (HF ELI5 also publishes
r/askscience and r/AskHistorians records; only ``explainlikeimfive`` counts).

Other rejects: ``bad_encoding``, ``bad_json``, ``not_an_object`` (a line or array element),
``malformed_record`` (fields of the wrong type, answer lists of different lengths),
``malformed_file`` (a file that is neither an array nor JSON lines), ``blank_file`` (only
whitespace); from the core's reader ``empty_file`` (no byte at all) and
``unreadable_file`` (among others an array that breaks off or is not UTF-8; the records
before the problem are kept).

Records (:mod:`pipelines.corpus.accounting`): a record is one answer of a question, the unit
a pair is made of. It ends as a pair, an answer reject (``malformed_record``,
``deleted_answer``, ``empty_answer``, ``duplicate_answer``) or the skip ``not_chosen``
(an answer :func:`select_answers` does not take). What is rejected before its answers
are looked at is one record: a question rejected as ``other_subreddit``, ``empty_title``
or ``no_answer``, a ``duplicate_question`` copy, a line or element that cannot be read
as a question, and a ``malformed_file``. Records are counted once the kept copy of a
question is known.

Source options (``--source-option eli5.<key>=<value>``):
    ``splits``              comma-separated, of ``train``, ``validation``, ``test``
                            (default ``train``)
    ``min_relative_score``  a further answer needs at least this share of the best
                            answer's score (default 0.5)
    ``max_answers``         pairs per question at most (default 2; 1 = best answer only)
    ``url_tokens``          ``drop`` (default) or ``keep`` the URL placeholders
"""
from __future__ import annotations

import html
import posixpath
import re

import apache_beam as beam

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_text
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import make_row
from pipelines.corpus.source import Source, SourceContext, SourceOutput, names_from, positive_int
from pipelines.engine import ReadFiles, blank_file, files, json_items, json_lines

DATASET = "eli5"
SUBREDDIT = "explainlikeimfive"
SPLITS = ("train", "validation", "test")
DEFAULT_SPLITS = frozenset({"train"})
DEFAULT_MIN_RELATIVE_SCORE = 0.5
DEFAULT_MAX_ANSWERS = 2
URL_TOKEN_MODES = ("drop", "keep")
DELETED_MARKERS = frozenset({"[deleted]", "[removed]"})
# Format preference when one question comes in several files.
FORMATS = ("hf", "category", "kilt")
EXCERPT_CHARS = 300

_JSON_NAME = re.compile(r"\.jsonl?(?:\.(?:gz|bz2|xz|zst))?$", re.I)
_QUOTE_MARKER = re.compile(r"^[ \t]*(?:>[ \t]*)+", re.M)
_URL_LINK = re.compile(r"\[([^\]\n]*)\]\(\s*_?URL_\d+_?\s*\)")
_URL_TOKEN = re.compile(
    r"(?<![A-Za-z0-9])_URL_\d+_(?![A-Za-z0-9])|(?<![A-Za-z0-9_])URL_\d+(?![A-Za-z0-9_])")


# -- files and splits ---------------------------------------------------------------------

def split_of(basename: str) -> str:
    """The split a file holds, from its name: ``test``, ``validation`` or ``train``."""
    tokens = re.split(r"[^a-z0-9]+", basename.lower())
    if any(token.startswith("test") for token in tokens):
        return "test"
    if any(token in {"dev", "val", "valid", "validation"} for token in tokens):
        return "validation"
    return "train"


def is_record_file(basename: str) -> bool:
    return bool(_JSON_NAME.search(basename)) and not basename.startswith(".")


# -- records --------------------------------------------------------------------------------

def _score(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _question_id(value) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def question_from_hf(record: dict) -> dict:
    """A question of the HF ELI5 / ELI5-Category shape, as ``{q_id, title, subreddit,
    format, answers: [{a_id, text, score, rank}]}``. Raises ``ValueError`` when a field
    has the wrong type."""
    q_id, title, answers = _question_id(record.get("q_id")), record.get("title"), record.get("answers")
    if q_id is None or not isinstance(title, str):
        raise ValueError("q_id or title is missing or not a string")
    if not isinstance(answers, dict):
        raise ValueError("answers is not an object of parallel lists")
    texts = answers.get("text", [])
    if not isinstance(texts, list):
        raise ValueError("answers.text is not a list")
    a_ids = answers.get("a_id") or [None] * len(texts)
    scores = answers.get("score") or [None] * len(texts)
    if not isinstance(a_ids, list) or not isinstance(scores, list):
        raise ValueError("answers.text, answers.a_id and answers.score must be lists")
    if not len(texts) == len(a_ids) == len(scores):
        raise ValueError(f"answer lists differ in length ({len(texts)} texts, {len(a_ids)} ids, "
                         f"{len(scores)} scores)")
    return {
        "q_id": q_id, "title": title, "subreddit": record.get("subreddit"),
        "format": "category" if "category" in record else "hf",
        "answers": [{"a_id": str(a_id) if a_id is not None else f"answer {rank}", "text": text,
                     "score": _score(score), "rank": rank}
                    for rank, (a_id, text, score) in enumerate(zip(a_ids, texts, scores))],
    }


def question_from_kilt(record: dict) -> dict:
    """A KILT ELI5 question in the same shape as :func:`question_from_hf`; the
    ``provenance`` items of ``output`` are not answers, and answers have no id."""
    q_id, title, output = _question_id(record.get("id")), record.get("input"), record.get("output", [])
    if q_id is None or not isinstance(title, str):
        raise ValueError("id or input is missing or not a string")
    if not isinstance(output, list):
        raise ValueError("output is not a list")
    answers = []
    for item in output:
        if isinstance(item, dict) and "answer" in item:
            meta = item.get("meta") if isinstance(item.get("meta"), dict) else {}
            rank = len(answers)
            answers.append({"a_id": f"answer {rank}", "text": item["answer"],
                            "score": _score(meta.get("score")), "rank": rank})
    return {"q_id": q_id, "title": title, "subreddit": SUBREDDIT, "format": "kilt", "answers": answers}


def question_from_record(record: dict) -> dict:
    """Recognise the record format and read the question; ``ValueError`` otherwise."""
    if "input" in record and "q_id" not in record:
        return question_from_kilt(record)
    if "q_id" in record:
        return question_from_hf(record)
    raise ValueError("neither an ELI5 record (q_id, title, answers) nor a KILT record (id, input, output)")


# -- text and the pair rule ------------------------------------------------------------------

def clean_text(text: str, url_tokens: str = "drop") -> str:
    """Reddit markdown text as plain text: entities decoded, quote markers removed, URL
    placeholders removed (``url_tokens="drop"``) or kept, whitespace collapsed."""
    text = html.unescape(text)
    text = _QUOTE_MARKER.sub("", text)
    if url_tokens == "drop":
        text = _URL_LINK.sub(r"\1", text)
        text = _URL_TOKEN.sub(" ", text)
    return normalize_text(text)


def is_deleted(text: str) -> bool:
    """An answer Reddit replaced by ``[deleted]``/``[removed]``."""
    return text.strip() in DELETED_MARKERS


def select_answers(answers: list[dict], min_relative_score: float = DEFAULT_MIN_RELATIVE_SCORE,
                   max_answers: int = DEFAULT_MAX_ANSWERS) -> list[dict]:
    """The answers of one question that become pairs.

    Project rule: the best answer (highest score; ties and unscored answers go by their
    order in the record, which upstream sorts by score) always; then further answers, best
    first, whose score is at least ``min_relative_score`` times the best score, up to
    ``max_answers`` in all. A second answer that the voters rated nearly as well as the
    first is a good answer too; one far below it is often a joke or a side remark. The
    defaults land near the documented 325,475 (see the module docstring). Answers without
    a score are never added beside the best one.
    """
    if not answers:
        return []
    ranked = sorted(answers, key=lambda a: (a["score"] is None, -(a["score"] or 0), a["rank"]))
    best, chosen = ranked[0], [ranked[0]]
    if best["score"] is None:
        return chosen
    for answer in ranked[1:]:
        if len(chosen) >= max_answers:
            break
        if answer["score"] is not None and answer["score"] >= min_relative_score * best["score"]:
            chosen.append(answer)
    return chosen


def eli5_pair(question: dict, answer: dict) -> dict:
    """eli5: (question title, answer text); counted as paired when the question's copy is
    the one kept (:func:`emit_kept_copy`)."""
    return make_row(DATASET, question["title"], answer["text"], source_file=question["source_file"],
                    record_id=f"{question['q_id']}/{answer['a_id']}")


def _reject_spec(reason: str, record_id: str, detail: str, excerpt) -> dict:
    return {"reason": reason, "record_id": record_id, "detail": detail, "excerpt": excerpt}


def evaluate_question(question: dict, options: dict) -> dict:
    """Rows and reject descriptions of one question, before de-duplication.

    Returns ``{"rows": [...], "rejects": [...], "not_chosen": n}``; rejects are plain
    dicts (reason, record_id, detail, excerpt) emitted only for the copy that is kept;
    ``not_chosen`` counts the usable answers :func:`select_answers` leaves out.
    """
    url_tokens = options["url_tokens"]
    q_id, rows, rejects = question["q_id"], [], []
    outcome = {"rows": rows, "rejects": rejects, "not_chosen": 0}
    if question.get("subreddit") not in (None, SUBREDDIT):
        rejects.append(_reject_spec("other_subreddit", q_id, f"a r/{question['subreddit']} question",
                                    {"title": question["title"][:EXCERPT_CHARS]}))
        return outcome
    title = clean_text(question["title"], url_tokens)
    if not title:
        rejects.append(_reject_spec("empty_title", q_id, "the title is empty after cleaning", question["title"]))
        return outcome
    if not question["answers"]:
        rejects.append(_reject_spec("no_answer", q_id, "the question has no answer", {"title": title}))
        return outcome
    candidates, seen = [], {}
    for answer in sorted(question["answers"], key=lambda a: (a["score"] is None, -(a["score"] or 0), a["rank"])):
        record_id = f"{q_id}/{answer['a_id']}"
        if not isinstance(answer["text"], str):
            rejects.append(_reject_spec("malformed_record", record_id, "the answer text is not a string",
                                        answer["text"]))
            continue
        if is_deleted(answer["text"]):
            rejects.append(_reject_spec("deleted_answer", record_id, f"answer is {answer['text'].strip()}", None))
            continue
        text = clean_text(answer["text"], url_tokens)
        if not text:
            rejects.append(_reject_spec("empty_answer", record_id, "the answer is empty after cleaning",
                                        answer["text"][:EXCERPT_CHARS]))
            continue
        if text in seen:
            rejects.append(_reject_spec("duplicate_answer", record_id,
                                        f"same text as answer {seen[text]}", text[:EXCERPT_CHARS]))
            continue
        seen[text] = answer["a_id"]
        candidates.append({**answer, "text": text})
    chosen = select_answers(candidates, options["min_relative_score"], options["max_answers"])
    cleaned = {**question, "title": title}
    rows.extend(eli5_pair(cleaned, answer) for answer in chosen)
    outcome["not_chosen"] = len(candidates) - len(chosen)
    return outcome


# -- reading --------------------------------------------------------------------------------

def _sniff_layout(stream) -> str:
    """``array``, ``lines``, ``blank`` (only whitespace) or ``empty`` (no byte) from the
    first non-whitespace byte; ``other`` for anything else."""
    head = stream.peek(4096)[:4096]
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if not head:
        return "empty"
    if not text:
        # Blank lines only, unless the blank run is too long to see past.
        return "blank" if len(head) < 4096 else "lines"
    return {b"[": "array", b"{": "lines"}.get(text[:1], "other")


class _RecordReader:
    """``read_file`` for :class:`ReadFiles`: every record of one file, evaluated.

    A JSON array is streamed with the core's :func:`json_items`: an array that breaks off
    (or is not UTF-8) raises after its elements so far, and ReadFiles keeps them and
    records the file as ``unreadable_file``. A file without any byte gives nothing here:
    ReadFiles records it as ``empty_file``.
    """

    def __init__(self, options: dict):
        self.options = options

    def __call__(self, stream, source_file: str):
        layout = _sniff_layout(stream)
        if layout == "blank":
            yield blank_file(DATASET, source_file)
        elif layout == "other":
            yield rejected(DATASET, "malformed_file", source_file=source_file, counts_as_read=True,
                           detail="neither a JSON array nor JSON lines", excerpt=stream.peek(200)[:200])
        elif layout == "lines":
            for item in json_lines(stream, DATASET, source_file):
                if isinstance(item, tuple):
                    number, record = item
                    yield self._record(record, source_file, f"line {number}", number)
                else:
                    accounting.count_read(DATASET)
                    yield item  # a bad line, already a reject
        elif layout == "array":
            yield from self._array(stream, source_file)

    def _array(self, stream, source_file):
        for index, value in enumerate(json_items(stream, "item")):
            position = f"element {index}"
            if not isinstance(value, dict):
                yield rejected(DATASET, "not_an_object", counts_as_read=True,
                               source_file=source_file, record_id=position,
                               detail="array element is JSON but not an object", excerpt=value)
                continue
            yield self._record(value, source_file, position, index)

    def _record(self, record: dict, source_file: str, position: str, order: int):
        try:
            question = question_from_record(record)
        except ValueError as exc:
            return rejected(DATASET, "malformed_record", counts_as_read=True,
                            source_file=source_file, record_id=position,
                            detail=str(exc), excerpt=record)
        question["source_file"] = source_file
        outcome = evaluate_question(question, self.options)
        preference = (FORMATS.index(question["format"]), source_file, order)
        return (question["q_id"], {"preference": preference, "source_file": source_file,
                                   "title": question["title"][:EXCERPT_CHARS], **outcome})


def emit_kept_copy(element):
    """The rows and rejects of the preferred copy of a question; the other copies are
    ``duplicate_question`` rejects."""
    q_id, copies = element
    copies = sorted(copies, key=lambda copy: copy["preference"])
    kept = copies[0]
    # Records of the kept copy: its answers (or the question, when it is rejected whole),
    # and one per other copy.
    accounting.count_read(DATASET, len(kept["rows"]) + len(kept["rejects"]) + kept["not_chosen"]
                          + len(copies) - 1)
    accounting.count_paired(DATASET, len(kept["rows"]))
    accounting.count_skipped(DATASET, "not_chosen", kept["not_chosen"])
    yield from kept["rows"]
    for spec in kept["rejects"]:
        yield rejected(DATASET, spec["reason"], source_file=kept["source_file"], record_id=spec["record_id"],
                       detail=spec["detail"], excerpt=spec["excerpt"])
    for copy in copies[1:]:
        yield rejected(DATASET, "duplicate_question", source_file=copy["source_file"], record_id=q_id,
                       detail=f"question {q_id} is already read from {kept['source_file']}",
                       excerpt={"title": copy["title"]})


# -- options and the source ------------------------------------------------------------------

parse_splits = names_from(SPLITS)


def rule_options(ctx: SourceContext) -> dict:
    return {
        "min_relative_score": ctx.option("min_relative_score", DEFAULT_MIN_RELATIVE_SCORE, float),
        "max_answers": ctx.option("max_answers", DEFAULT_MAX_ANSWERS, positive_int),
        "url_tokens": ctx.option("url_tokens", "drop", choices=URL_TOKEN_MODES),
    }


class Eli5(Source):
    name = "eli5"
    counts_records = True
    folder = "eli5"
    datasets = (DATASET,)
    description = "ELI5 (Reddit r/explainlikeimfive): HF ELI5, ELI5-Category and KILT ELI5 files"

    def find_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        """The record files of the selected splits, as ``(path, size)``."""
        splits = ctx.option("splits", DEFAULT_SPLITS, parse_splits)
        return [(path, size) for path, size in files.list_dir(ctx.source_dir)
                if is_record_file(posixpath.basename(path)) and split_of(posixpath.basename(path)) in splits]

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        return self.find_files(ctx)

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        paths = [path for path, _size in self.find_files(ctx)]
        read = pipeline | "eli5/Read" >> ReadFiles(
            paths, _RecordReader(rule_options(ctx)), input_root=ctx.input_root, dataset=DATASET,
            strict=ctx.strict)
        kept = (
            read.records
            | "eli5/GroupCopies" >> beam.GroupByKey()
            | "eli5/KeepFirstCopy" >> beam.FlatMap(emit_kept_copy).with_outputs(REJECTED, main="rows")
        )
        return SourceOutput(rows={DATASET: kept.rows}, rejects=[read[REJECTED], kept[REJECTED]])


SOURCE = Eli5()
