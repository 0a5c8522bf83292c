"""The TriviaQA pair rules (see the package docstring) and the Beam steps that apply them:
questions merged across files, evidence files matched against the questions citing them,
and the pair chosen per question."""
from __future__ import annotations

import unicodedata

import apache_beam as beam

from pipelines.corpus import accounting
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import make_row
from pipelines.engine import files

DATASET = "trivia_qa"
_ARTICLES = frozenset({"a", "an", "the"})


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

    Not :class:`~pipelines.engine.ReadFiles`: the evidence files to open are known only
    once the question files are read (they come out of a GroupByKey), each one is read
    together with the questions that cite it, and a file that cannot be read is not a
    reading failure of the run but an outcome for those questions (``missing_evidence_file``,
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
