"""TriviaQA: (question, passage of an evidence document that contains the answer) pairs.

Files (under ``IN/triviaqa/``, as unpacked from ``triviaqa-rc.tar.gz`` and optionally
``triviaqa-unfiltered.tar.gz``):
    ``triviaqa-rc/qa/{web,wikipedia}-{train,dev}.json``  question files, each one
        pretty-printed JSON object ``{"Data": [record, ...], "Domain", "Split", ...}``
    ``triviaqa-rc/evidence/web/<n>/<n>_<m>.txt``         web evidence (plain UTF-8 text)
    ``triviaqa-rc/evidence/wikipedia/<Title>.txt``       Wikipedia evidence
    ``triviaqa-unfiltered/unfiltered-web-{train,dev}.json``  the unfiltered release: read
        only with ``releases=rc,unfiltered``; its ``Filename``s resolve against the rc
        ``evidence/`` folder (it has none of its own)
The rc layout with ``qa/`` and ``evidence/`` directly under ``IN/triviaqa/`` is accepted
too; evidence is then looked up in the ``evidence/`` beside the ``qa/`` folder the
question came from. Any file may be compressed (sniffed from the bytes). Not candidates
and not read: ``*-test-without-answers.json`` (no answers) and ``verified-*-dev.json``
(hand-checked subsets of the dev files, which would repeat dev questions).

Parse: question files are several GB when evidence is inlined, so they are never loaded
whole. Every record starts on a line that is exactly 8 spaces and ``{`` and ends on a line
starting with 8 spaces and ``}``; those lines are collected and each record is parsed on
its own (:func:`iter_record_texts`). Record problems are rejects: ``bad_encoding``,
``bad_json``, ``not_an_object``, ``malformed_record`` (``QuestionId`` or ``Question``
not a string, ``EntityPages``/``SearchResults`` not lists), ``missing_answer`` (a train
or dev record without ``Answer``), ``no_answer_aliases`` (no alias left after
normalisation). A file that has bytes but no record line at all (not the release
layout) is ``malformed_file``; from the core's reader, a file without any byte is
``empty_file`` and one that ends inside a record ``unreadable_file`` (the records before
it are kept). Evidence entries without a string ``Filename`` are not references and are
left out.

Evidence: ``EntityPages[].Filename`` is relative to ``evidence/wikipedia``,
``SearchResults[].Filename`` to ``evidence/web``. The same question (same ``QuestionId``)
is listed in the web and the Wikipedia files; a Beam ``GroupByKey`` on ``QuestionId``
merges its entries (first file name wins for the text; references are united). The
references are then grouped by evidence file, and each referenced file is read once, by
the worker that holds its group, and matched against every question that cites it: a
Beam join keyed by file name that only ever opens the files some question needs (the rc
release has hundreds of thousands of evidence files; listing them all into the graph
would not scale). A referenced file that does not exist is counted once as ``missing_evidence_file``
(the release is known to lack some); an evidence file with a ``Filename`` that would
leave the evidence folder is ``bad_evidence_filename``; one that cannot be read or
decoded as UTF-8 is ``unreadable_evidence_file``. Finally the passages found meet their
question in a ``CoGroupByKey`` on ``QuestionId``.

Records (:mod:`pipelines.corpus.accounting`): a record is one record of a question file (a
question as one file lists it). It ends as a pair, a reject (parse rejects,
``no_evidence``, ``answer_not_in_evidence``, ``no_evidence_file``) or the skip
``question_in_another_file``: the entries of a ``QuestionId`` are merged into one
question, which stands for all of them, so every entry but the first by file name is
that skip. A ``malformed_file`` is one record read and rejected, and so is each evidence
file reject (``missing_evidence_file``, ``bad_evidence_filename``,
``unreadable_evidence_file``): evidence files are not records otherwise.

Pair rules (``docs/corpus-spec.md``; which evidence and how much of it is a **project
rule**), one function each:
    :func:`normalize_answer`   how answers and evidence are compared
    :func:`find_answer`        where in an evidence text the answer first occurs
    :func:`cut_passage`        the passage kept around it
    :func:`evidence_rank`      which evidence gives the pair when several contain the answer
    :func:`question_passage_pair`  trivia_qa: (question, passage)
A question whose evidence never contains an answer alias gives no pair
(``answer_not_in_evidence``), nor one without any evidence reference (``no_evidence``) or
whose referenced files are all missing or unreadable (``no_evidence_file``).

Documented count: 73,346. The rc train questions number 76,496 (web) and 61,888
(Wikipedia), mostly the same questions, so about 77k distinct train questions; rc kept
only questions whose evidence contains the answer, so nearly every one finds a passage
and the default build should land a few percent above the documented count (inside the
registry's 5% tolerance); missing evidence files and answers that only match after
TriviaQA's looser normalisation account for the questions that give no pair.

Source options (``--source-option trivia_qa.<key>=<value>``):
    ``splits``         comma-separated, default ``train`` (the documented count is train);
                       ``train,dev`` adds the dev questions.
    ``releases``       ``rc`` (default) or ``rc,unfiltered`` / ``unfiltered``: which
                       question files to read.
    ``prefer``         ``wikipedia`` (default) or ``web``: the evidence kind tried first
                       (see :func:`evidence_rank`).
    ``passage_words``  length of the passage in words, default 100.
"""
from __future__ import annotations

import functools
import re
import unicodedata

import apache_beam as beam

from pipelines.corpus import accounting
from pipelines.engine import files
from pipelines.engine.read import ReadFiles
from pipelines.engine.formats import parse_json
from pipelines.engine.lines import stream_is_empty, text_lines
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import make_row
from pipelines.corpus.source import Source, SourceContext, SourceOutput, positive_int

DATASET = "trivia_qa"
WIKIPEDIA, WEB = "wikipedia", "web"
SPLITS = ("train", "dev")
RELEASES = ("rc", "unfiltered")
DEFAULT_SPLITS = frozenset({"train"})
DEFAULT_RELEASES = frozenset({"rc"})
DEFAULT_PREFER = WIKIPEDIA
DEFAULT_PASSAGE_WORDS = 100

RECORD_START = b"        {"
RECORD_END = b"        }"
_COMPRESSED = r"(?:\.(?:gz|bz2|xz|zst))?"
_RC_FILE = re.compile(rf"^(?:web|wikipedia)-(?P<split>train|dev)\.json{_COMPRESSED}$")
_UNFILTERED_FILE = re.compile(rf"^unfiltered-web-(?P<split>train|dev)\.json{_COMPRESSED}$")
_ARTICLES = frozenset({"a", "an", "the"})


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
            :class:`ReadFiles` records the file as ``unreadable_file`` at that line.
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
    and matched entity name, normalised again by :func:`normalize_answer`."""
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
    """``read_file`` for :class:`ReadFiles`: the questions of one TriviaQA question file.

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


# -- pair rules ---------------------------------------------------------------------------

def normalize_answer(text: str) -> list[str]:
    """Tokens of ``text`` as TriviaQA compares answers: lower case, punctuation and
    symbols turned into spaces, the articles "a", "an", "the" dropped.

    The same function is applied to aliases and to evidence words, so "York," in a text
    matches the alias "York" and "The Beatles" matches "Beatles".
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = "".join(" " if unicodedata.category(c)[0] in "PSZC" else c for c in text)
    return [token for token in text.split() if token not in _ARTICLES]


def _word_tokens(text: str) -> tuple[list[str], list[str], list[int]]:
    """Words of ``text``, and its normalised tokens with the word each comes from."""
    words = text.split()
    tokens, owners = [], []
    for index, word in enumerate(words):
        for token in normalize_answer(word):
            tokens.append(token)
            owners.append(index)
    return words, tokens, owners


def find_answer(tokens: list[str], positions: dict[str, list[int]],
                aliases: list[str]) -> tuple[int, int] | None:
    """First occurrence of any alias in an evidence text, as token span ``(start, end)``
    (end exclusive), or ``None``.

    Project rule: an alias matches a run of whole normalised tokens (so "8" does not match
    "1985" and "york" does not match "yorkshire"). The earliest occurrence in the document
    wins, the longer alias on a tie: early text (a Wikipedia lead, the top of a page) is
    usually the part about the answer.

    Args:
        tokens: the evidence's normalised tokens.
        positions: for each token, the sorted indexes where it occurs in ``tokens``.
        aliases: normalised aliases (tokens joined by single spaces).
    """
    best = None
    for alias in aliases:
        alias_tokens = alias.split()
        for start in positions.get(alias_tokens[0], ()):
            if best is not None and start > best[0]:
                break
            if tokens[start:start + len(alias_tokens)] == alias_tokens:
                span = (start, start + len(alias_tokens))
                if best is None or (span[0], -span[1]) < (best[0], -best[1]):
                    best = span
                break
    return best


def cut_passage(words: list[str], first_word: int, last_word: int, passage_words: int) -> str:
    """The ``passage_words`` words around the answer (words ``first_word..last_word``).

    Project rule: a fixed window of whole words with the answer in the middle (shifted
    inward at the start or end of the document), 100 words by default like the DPR
    passages other datasets of the corpus use. Evidence documents are whole web pages or
    Wikipedia articles (often thousands of words); a window keeps the pair about the
    answer and within the model's input length. An answer longer than the window keeps
    its first ``passage_words`` words.
    """
    span = last_word - first_word + 1
    if span >= passage_words:
        start = first_word
    else:
        start = max(0, first_word - (passage_words - span) // 2)
        start = max(0, min(start, len(words) - passage_words))
    return " ".join(words[start:start + passage_words])


def evidence_rank(candidate: dict, prefer: str) -> tuple:
    """Sort key of the passages found for one question: the smallest gives the pair.

    Project rule: one pair per question (the documented count is close to the number of
    distinct train questions). The preferred evidence kind first (Wikipedia by default:
    encyclopedic text, free of the menus and boilerplate of scraped web pages), then the
    order of the record (TagMe order for entity pages, search ``Rank`` for web results),
    then the file name so that the choice never depends on processing order.
    """
    return (candidate["kind"] != prefer, candidate["order"], candidate["filename"])


def question_passage_pair(question: dict, passage: dict) -> dict:
    """trivia_qa: (question, passage of the chosen evidence around the answer)."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, question["question"], passage["passage"],
                    source_file=question["source_file"],
                    record_id=f"{question['qid']} {passage['kind']}/{passage['filename']}")


# -- Beam transforms ------------------------------------------------------------------------

def _merge_question(element):
    """One question from its entries in several files (web and Wikipedia list the same
    questions): text from the first file by name, aliases and references united."""
    qid, entries = element
    entries = sorted(entries, key=lambda e: e["source_file"])
    if len(entries) > 1:  # the merged question stands for them
        accounting.count_skipped(DATASET, "question_in_another_file", len(entries) - 1)
    aliases = sorted({a for e in entries for a in e["aliases"]})
    refs: dict[str, tuple] = {}
    for entry in entries:
        for kind, name, order, path in entry["refs"]:
            if path not in refs or order < refs[path][2]:
                refs[path] = (kind, name, order, path)
    first = entries[0]
    question = {"qid": qid, "question": first["question"], "aliases": aliases,
                "refs": [refs[p] for p in sorted(refs)], "source_file": first["source_file"]}
    if not question["refs"]:
        yield rejected(DATASET, "no_evidence", source_file=first["source_file"], record_id=qid,
                       detail="the question has no evidence file reference",
                       excerpt={"question": first["question"]})
        return
    yield question


def _references(question: dict):
    for kind, name, order, path in question["refs"]:
        yield path, {"qid": question["qid"], "aliases": question["aliases"], "kind": kind,
                     "filename": name, "order": order}


class _MatchEvidence(beam.DoFn):
    """Read one evidence file and find the answer of every question that cites it.

    Emits, per citing question, ``(qid, outcome)`` where the outcome is a passage or the
    reason there is none (``missing`` / ``no_match``); file problems are rejects, once
    per file.

    Not :class:`ReadFiles`: the evidence files to open are known only once the question
    files are read (they come out of a GroupByKey), each one is read together with the
    questions that cite it, and a file that cannot be read is not a reading failure of
    the run but an outcome for those questions (``missing_evidence_file``,
    ``unreadable_evidence_file``, then ``no_evidence_file``), never stopped by ``--strict``.
    """

    def __init__(self, input_root: str, passage_words: int):
        self.input_root = input_root
        self.passage_words = passage_words

    def process(self, element):
        path, refs = element
        refs = sorted(refs, key=lambda r: (r["qid"], r["kind"], r["order"]))
        relative = files.relative_to(path, self.input_root)
        text, reason, detail = self._read(path, refs[0]["filename"])
        if text is None:
            # an evidence file, a record only as a reject
            yield rejected(DATASET, reason, counts_as_read=True,
                           source_file=relative, record_id=refs[0]["filename"],
                           detail=f"{detail}; cited by {len(refs)} question(s)",
                           excerpt=[r["qid"] for r in refs[:50]])
            for ref in refs:
                yield ref["qid"], {"missing": True}
            return
        words, tokens, owners = _word_tokens(text)
        positions: dict[str, list[int]] = {}
        for index, token in enumerate(tokens):
            positions.setdefault(token, []).append(index)
        for ref in refs:
            span = find_answer(tokens, positions, ref["aliases"])
            if span is None:
                yield ref["qid"], {"missing": False}
                continue
            passage = cut_passage(words, owners[span[0]], owners[span[1] - 1], self.passage_words)
            yield ref["qid"], {"passage": passage, "kind": ref["kind"], "order": ref["order"],
                               "filename": ref["filename"]}

    @staticmethod
    def _read(path: str, filename: str) -> tuple[str | None, str, str]:
        if not files.safe_member_name(filename):
            return None, "bad_evidence_filename", f"Filename {filename!r} would leave the evidence folder"
        if not files.exists(path):
            return None, "missing_evidence_file", "the referenced evidence file does not exist"
        try:
            with files.open_input(path) as stream:
                return stream.read().decode("utf-8"), "", ""
        except Exception as exc:  # decoding and the filesystems raise their own types
            return None, "unreadable_evidence_file", f"cannot read the evidence file: {type(exc).__name__}: {exc}"


def _pair_question(element, prefer: str):
    _qid, grouped = element
    questions = list(grouped["question"])
    outcomes = list(grouped["outcome"])
    passages = [o for o in outcomes if "passage" in o]
    for question in questions:  # one per QuestionId after the merge
        if passages:
            yield question_passage_pair(question, min(passages, key=lambda p: evidence_rank(p, prefer)))
            continue
        all_missing = bool(outcomes) and all(o["missing"] for o in outcomes)
        reason = "no_evidence_file" if all_missing else "answer_not_in_evidence"
        detail = ("every referenced evidence file is missing or unreadable" if all_missing
                  else "no answer alias occurs in any referenced evidence text")
        yield rejected(DATASET, reason, source_file=question["source_file"], record_id=question["qid"],
                       detail=detail, excerpt={"question": question["question"],
                                               "aliases": question["aliases"][:20]})


class TriviaQA(Source):
    name = "trivia_qa"
    counts_records = True
    folder = "triviaqa"
    datasets = (DATASET,)
    description = "TriviaQA rc (question files and evidence texts), question/evidence passages"

    def _options(self, ctx: SourceContext) -> dict:
        return {
            "splits": ctx.option("splits", DEFAULT_SPLITS, functools.partial(parse_names, SPLITS)),
            "releases": ctx.option("releases", DEFAULT_RELEASES, functools.partial(parse_names, RELEASES)),
            "prefer": ctx.option("prefer", DEFAULT_PREFER, choices=(WIKIPEDIA, WEB)),
            "passage_words": ctx.option("passage_words", DEFAULT_PASSAGE_WORDS, positive_int),
        }

    def find_question_files(self, ctx: SourceContext) -> list[tuple[str, int, str]]:
        """The question files to read, as ``(path, size, evidence folder)``."""
        options = self._options(ctx)
        found, rc_roots = [], []
        for qa_dir in (files.join(ctx.source_dir, "triviaqa-rc", "qa"), files.join(ctx.source_dir, "qa")):
            for path, size in files.list_files(files.join(qa_dir, "*")):
                match = _RC_FILE.match(path.rsplit("/", 1)[-1])
                if match and "rc" in options["releases"] and match.group("split") in options["splits"]:
                    found.append((path, size, files.join(qa_dir.rsplit("/", 1)[0], "evidence")))
                if match:
                    rc_roots.append(files.join(qa_dir.rsplit("/", 1)[0], "evidence"))
        if "unfiltered" in options["releases"]:
            rc_evidence = rc_roots[0] if rc_roots else files.join(ctx.source_dir, "triviaqa-rc", "evidence")
            for path, size in files.list_files(files.join(ctx.source_dir, "triviaqa-unfiltered", "*")):
                match = _UNFILTERED_FILE.match(path.rsplit("/", 1)[-1])
                if match and match.group("split") in options["splits"]:
                    found.append((path, size, rc_evidence))
        return sorted(found)

    def input_files(self, ctx: SourceContext) -> list[tuple[str, int]]:
        question_files = self.find_question_files(ctx)
        evidence = set()
        for _path, _size, root in question_files:
            evidence.update(files.list_dir(root))
        return sorted({(path, size) for path, size, _root in question_files} | evidence)

    def expand(self, pipeline, ctx: SourceContext) -> SourceOutput:
        options = self._options(ctx)
        question_files = self.find_question_files(ctx)
        roots = {ctx.relative(path): root for path, _size, root in question_files}
        read = pipeline | "trivia_qa/ReadQuestions" >> ReadFiles(
            [path for path, _size, _root in question_files], ReadQuestionFile(roots),
            input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict)
        merged = (
            read.records
            | "trivia_qa/KeyByQuestionId" >> beam.Map(lambda q: (q["qid"], q))
            | "trivia_qa/GroupQuestionEntries" >> beam.GroupByKey()
            | "trivia_qa/MergeQuestion" >> beam.FlatMap(_merge_question).with_outputs(REJECTED, main="questions")
        )
        matched = (
            merged.questions
            | "trivia_qa/KeyByEvidenceFile" >> beam.FlatMap(_references)
            | "trivia_qa/GroupByEvidenceFile" >> beam.GroupByKey()
            | "trivia_qa/MatchEvidence" >> beam.ParDo(_MatchEvidence(ctx.input_root, options["passage_words"]))
            .with_outputs(REJECTED, main="outcomes")
        )
        pairs = (
            {"question": merged.questions | "trivia_qa/KeyQuestions" >> beam.Map(lambda q: (q["qid"], q)),
             "outcome": matched.outcomes}
            | "trivia_qa/JoinPassages" >> beam.CoGroupByKey()
            | "trivia_qa/Pair" >> beam.FlatMap(_pair_question, options["prefer"])
            .with_outputs(REJECTED, main="rows")
        )
        return SourceOutput(rows={DATASET: pairs.rows},
                            rejects=[read[REJECTED], merged[REJECTED], matched[REJECTED], pairs[REJECTED]])


def parse_names(allowed: tuple[str, ...], value: str) -> frozenset:
    """Option cast: comma-separated names, each one of ``allowed``, as a frozenset."""
    names = frozenset(s.strip() for s in value.split(",") if s.strip())
    if not names or not names <= set(allowed):
        raise ValueError(f"expected a comma-separated subset of {', '.join(allowed)}")
    return names


SOURCE = TriviaQA()
