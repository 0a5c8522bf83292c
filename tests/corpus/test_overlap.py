"""The overlap rules (pipelines.corpus.overlap) and the evaluation sets they are built from
(pipelines.corpus.evalsets)."""
from __future__ import annotations

import gzip
import hashlib
import json
import math
import random

import numpy as np
import pyarrow as pa
import pytest

from pipelines.corpus import overlap
from pipelines.corpus.evalsets import EvalSetError, evalset_checksums, read_evalsets
from pipelines.corpus.matching import match_form, match_words
from pipelines.corpus.overlap import RULE_NAMES, EvalIndex
from tests.conftest import REPO

PASSAGE = ("The Eiffel Tower is a wrought iron lattice tower on the Champ de Mars in Paris, France. "
           "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
           "from 1887 to 1889 as the centrepiece of the World's Fair.")
EVAL = [
    ("nq", "q1", "How long does it take to boil an egg?"),
    ("nq", "q2", "what is the capital of France"),
    ("nq", "q3", "who wrote the declaration of independence"),
    ("nq", "corpus:d1", PASSAGE),
    ("quora", "7", "What is the best way to learn Python programming?"),
    ("quora", "8", "Why do cats purr when they are happy?"),
]


@pytest.fixture(scope="module")
def index() -> EvalIndex:
    return EvalIndex.build(EVAL)


def matched(index: EvalIndex, text: str):
    """(evaluation set, id, rule) of the match of ``text``, or None."""
    result = index.match([text])
    if not result.matched[0]:
        return None
    return (*index.describe(int(result.entry[0])), RULE_NAMES[int(result.rule[0])])


def test_words_are_those_of_the_match_form():
    rng = random.Random(3)
    alphabet = list("abcXYZ019 .,;'\u2019-_/\t\n\u00c9\u00e9\u00df\u0130\u0131\u03a3\u03c3\u03c2\u4e2d\u6587"
                    "\U0001F600\u0301\u00a0\ufb01\u216b\u0663\u200b\u01c5")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(5000)]
    texts += ["", "a", "Ab" * 40 + " c", "\u0130stanbul", None]
    column = pa.array(texts)
    for array in (column, column.slice(11, 3000), column.cast(pa.large_string())):
        words = overlap._words(overlap._as_array(array))
        expected = [[w for w in row or [] if w] for row in match_words(array).to_pylist()]
        assert words.counts.tolist() == [len(row) for row in expected]
        hash_of: dict[str, int] = {}
        for word, value in zip((w for row in expected for w in row), words.hashes.tolist()):
            assert hash_of.setdefault(word, value) == value
        assert len(set(hash_of.values())) == len(hash_of)


def test_index_round_trip_and_order_independence(index):
    data = index.to_bytes()
    again = EvalIndex.from_bytes(data)
    assert again.to_bytes() == data
    assert EvalIndex.build(list(reversed(EVAL))).to_bytes() == data
    assert EvalIndex.key_of(data) == hashlib.sha256(data[40:]).digest()
    assert again.sizes() == {"nq": 4, "quora": 2}
    texts = ["HOW long does it take, to boil an egg", "Gustave Eiffel " + PASSAGE[60:200], "nothing alike"]
    first, second = index.match(texts), again.match(texts)
    assert first.entry.tolist() == second.entry.tolist() and first.rule.tolist() == second.rule.tolist()
    with pytest.raises(ValueError):
        EvalIndex.from_bytes(b"not an index")


@pytest.mark.parametrize("text", [
    "How long does it take to boil an egg?",
    "how long does it take to boil an egg",
    "HOW LONG DOES IT TAKE TO BOIL AN EGG!!!",
    "  how long -- does it take to boil an egg ??? ",
    "How_long does it take to boil an egg",
])
def test_exact_after_case_punctuation_and_spacing(index, text):
    assert matched(index, text) == ("nq", "q1", "exact")


@pytest.mark.parametrize("text, entry", [
    ("how long does it take to hard boil an egg", "q1"),
    ("How long would it take to boil an egg?", "q1"),
    ("how long to boil an egg", "q1"),
    ("What's the capital city of France?", "q2"),
    ("Who actually wrote the US declaration of independence?", "q3"),
    ("what is the best way to learn python", "7"),
    ("what is the best way to learn Python programming quickly?", "7"),
    ("Why do cats purr when they're happy", "8"),
])
def test_paraphrases_by_a_few_words(index, text, entry):
    assert matched(index, text)[1:] == (entry, "jaccard")


def test_thirteen_words_inside_a_long_text(index):
    inside = " ".join(PASSAGE.split()[9:22])  # 13 words
    assert len(inside.split()) == 13
    text = f"Visitors often read that {inside.upper()}; the tour costs 25 euros and lasts two hours."
    assert matched(index, text) == ("nq", "corpus:d1", "13-gram")
    assert matched(index, PASSAGE.replace(",", " ;")) == ("nq", "corpus:d1", "exact")


@pytest.mark.parametrize("text", [
    "what is the capital of Germany",                     # another question on the same pattern
    "What is the best way to learn Java?",
    "How long does it take to bake a cake?",
    "Why do dogs bark when they are happy?",
    "Paris",
    "",
    # twelve consecutive words of the passage, no more, in a long text
    "Tourists know that " + " ".join(PASSAGE.split()[9:21]) + " yet they rarely climb all of "
    "its stairs because the lifts are quicker and the view from the second floor is already fine",
])
def test_near_misses_are_kept(index, text):
    assert matched(index, text) is None


def test_words_common_in_the_evaluation_set_weigh_less():
    """Where many evaluation queries share a pattern, a text that only shares the pattern
    is kept, and one that keeps the topic words while rewording the rest is found."""
    topics = ["python", "java", "rust", "haskell", "spanish", "guitar", "chess", "calculus",
              "photography", "knitting", "welding", "origami"]
    pattern = EvalIndex.build([("quora", str(n), f"What is the best way to learn {topic} programming?")
                               for n, topic in enumerate(topics[:3])]
                              + [("quora", str(n), f"What is the best way to learn {topic}?")
                                 for n, topic in enumerate(topics[3:], start=3)])
    assert matched(pattern, "What is the best way to learn Fortran programming?") is None
    assert matched(pattern, "best way to learn python programming quickly") == ("quora", "0", "jaccard")


def _reference(entries, rows):
    """The three rules written plainly, one pair of texts at a time: (entry, rule, score)
    per row, entries numbered in (evaluation set, id) order."""
    entries = sorted((e for e in entries if match_form(e[2])), key=lambda e: (e[0], e[1]))
    words = [match_form(text).split() for _s, _i, text in entries]
    n = len(entries)
    df: dict[str, int] = {}
    for ws in words:
        for w in set(ws):
            df[w] = df.get(w, 0) + 1

    def weight(w):
        value = math.log1p(n / max(df.get(w, 0), 1))
        return min(value, overlap.FUNCTION_WORD_SHARE * math.log1p(n)) if w in overlap.FUNCTION_WORDS else value

    def topic(w):
        return w not in overlap.FUNCTION_WORDS and df.get(w, 0) <= max(1, int(n * overlap.TOPIC_SHARE))

    grams = {}
    for k, ws in enumerate(words):
        for i in range(len(ws) - overlap.NGRAM + 1):
            grams.setdefault(tuple(ws[i:i + overlap.NGRAM]), k)
    results = []
    for text in rows:
        row = match_form(text).split()
        exact = [k for k, ws in enumerate(words) if ws == row and row]
        if exact:
            results.append((exact[0], 0, 1.0))
            continue
        found = [grams[tuple(row[i:i + overlap.NGRAM])] for i in range(len(row) - overlap.NGRAM + 1)
                 if tuple(row[i:i + overlap.NGRAM]) in grams]
        if found:
            results.append((found[0], 1, 1.0))
            continue
        best = None
        for k, ws in enumerate(words):
            a, b = set(row), set(ws)
            if (not (len(row) <= overlap.MAX_WORDS and len(ws) <= overlap.MAX_WORDS)
                    or len(a & b) < overlap.MIN_SHARED or not any(map(topic, a & b))):
                continue
            score = sum(map(weight, a & b)) / sum(map(weight, a | b))
            if score >= overlap.JACCARD - 1e-9 and (best is None or score > best[2] + 1e-12):
                best = (k, 2, score)
        results.append(best or (-1, 0, 1.0))
    return results


def test_the_vectorised_rules_agree_with_the_plain_ones():
    rng = random.Random(11)
    common = ["alpha", "beta", "gamma", "delta", "omega", "river", "stone", "light", "music", "paper",
              "the", "of", "is", "what", "how", "a", "to", "in"]
    vocabulary = common + [f"topic{n}" for n in range(400)]

    def word():
        return rng.choice(common) if rng.random() < 0.7 else rng.choice(vocabulary)

    texts = [" ".join(word() for _ in range(rng.choice([1, 3, 4, 5, 6, 8, 14, 20, 45]))) for _ in range(300)]
    entries = [(rng.choice(["set-a", "set-b"]), f"id{n}", text) for n, text in enumerate(texts[:150])]

    def vary(text):
        words = text.split()
        for _ in range(rng.randint(0, 3)):
            at = rng.randrange(len(words) + 1)
            words[at:at + rng.randint(0, 1)] = [word()] * rng.randint(0, 1)
        return " ".join(words).upper() if rng.random() < 0.3 else " ".join(words)

    rows = texts[150:] + [vary(text) for _s, _i, text in entries] + [
        "Prefix words " + " ".join(text.split()[2:17]) + " suffix" for _s, _i, text in entries[:40]]
    index = EvalIndex.build(entries)
    result = index.match(rows)
    expected = _reference(entries, rows)
    assert result.entry.tolist() == [e for e, _r, _s in expected]
    assert result.rule[result.matched].tolist() == [r for e, r, _s in expected if e >= 0]
    assert np.allclose(result.score, [s for _e, _r, s in expected])
    assert len({r for e, r, _s in expected if e >= 0}) == 3 and sum(e >= 0 for e, _r, _s in expected) > 100


def test_tables_with_repeated_texts_and_nulls(index):
    column = pa.chunked_array([["x", "how long does it take to boil an egg", None],
                               ["how long does it take to boil an egg"] * 3 + [""]])
    result = index.match(column)
    assert result.matched.tolist() == [False, True, False, True, True, True, False]
    assert set(result.entry[result.matched].tolist()) == {result.entry[1]}


SOURCES = ("amazon_qa", "eli5", "gooaq", "msmarco", "natural_questions", "paq", "quora", "searchqa",
           "squad", "stackexchange", "trivia_qa", "wikianswers", "yahoo_answers")


def test_an_unrelated_evaluation_set_matches_no_real_row(upstream_samples):
    """The real texts of half the sources (their upstream excerpts and bundled samples) as
    an evaluation set against those of the other half: nothing matches but the texts both
    halves hold (after normalisation), and those match exactly."""
    texts = {source: set() for source in SOURCES}
    for source in SOURCES:
        for folder in (upstream_samples / source, upstream_samples / f"{source}_v2",
                       upstream_samples / source.replace("_", ""), REPO / "pipelines/sources" / source / "sample"):
            if folder.is_dir():
                texts[source].update(_real_texts(folder))
    assert sum(len(found) for found in texts.values()) > 1000
    for first, second in ((SOURCES[::2], SOURCES[1::2]), (SOURCES[1::2], SOURCES[::2])):
        evaluation = sorted(set().union(*(texts[source] for source in first)))
        rows = sorted(set().union(*(texts[source] for source in second)) - set(evaluation))
        index = EvalIndex.build(("real", str(n), text) for n, text in enumerate(evaluation))
        result = index.match(rows)
        forms = {match_form(text) for text in evaluation}
        found = [(rows[n], RULE_NAMES[result.rule[n]]) for n in np.flatnonzero(result.matched)]
        assert [(text, rule) for text, rule in found if match_form(text) not in forms] == []
        assert all(rule == "exact" for _text, rule in found)


def _real_texts(folder) -> list[str]:
    """The distinct strings of at least three words in the upstream excerpts of a folder
    (JSON documents, JSON lines and TSV, plain or gzip): questions, titles, answers, passages."""
    found = set()

    def walk(value):
        if isinstance(value, str):
            if len(value.split()) >= 3:
                found.add(value)
        elif isinstance(value, (dict, list)):
            for item in value.values() if isinstance(value, dict) else value:
                walk(item)

    for path in sorted(folder.rglob("*")):
        kind = path.name.removesuffix(".gz").rsplit(".", 1)[-1]
        if not path.is_file() or kind not in ("json", "jsonl", "tsv") or path.name == "expected_counts.json":
            continue
        data = path.read_bytes()
        text = (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode("utf-8", "replace")
        if kind == "json":
            try:
                walk(json.loads(text))
            except ValueError:
                pass
            continue
        for line in text.splitlines():
            if kind == "jsonl":
                try:
                    walk(json.loads(line))
                except ValueError:
                    pass
            else:
                walk(line.split("\t"))
    return sorted(found)


# -- evaluation sets ------------------------------------------------------------------------

def _beir(folder, queries, corpus, qrels: dict[str, str]):
    folder.mkdir(parents=True)
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (folder / "qrels").mkdir()
    for name, text in qrels.items():
        (folder / "qrels" / name).write_text(text)
    return folder


def _texts(index: EvalIndex, text: str):
    result = index.match([text])
    return index.describe(int(result.entry[0])) if result.matched[0] else None


def test_beir_layout(tmp_path):
    folder = _beir(
        tmp_path / "scifacts",
        [{"_id": "1", "text": "Does vitamin D prevent the common cold?", "metadata": {}},
         {"_id": "2", "text": "Is coffee bad for the heart?", "metadata": {}},
         {"_id": 3, "text": "Training query never evaluated here", "metadata": {}}],
        [{"_id": "d1", "title": "Vitamin D", "text": "Vitamin D supplements did not reduce colds in adults."},
         {"title": "Coffee", "_id": "d2", "text": "Moderate coffee drinking is not linked to heart disease."},
         {"_id": "d3", "title": "", "text": "An unrelated passage that no query judged relevant."}],
        {"test.tsv": "query-id\tcorpus-id\tscore\n1\td1\t1\n2\td2\t2\n2\td3\t0\n"})
    sets = read_evalsets([str(folder)])
    assert sets.counts == {"scifacts": {"queries": 2, "passages": 2, "queries_missing": 0, "passages_missing": 0}}
    assert _texts(sets.index, "does vitamin d prevent the common cold") == ("scifacts", "1")
    assert _texts(sets.index, "Moderate coffee drinking is NOT linked to heart disease") == ("scifacts", "corpus:d2")
    assert _texts(sets.index, "Training query never evaluated here") is None      # not in a split file
    assert _texts(sets.index, "An unrelated passage that no query judged relevant.") is None  # score 0
    assert [(f["evalset"], f["path"], f["bytes"]) for f in sets.files] == [
        ("scifacts", str(folder / name), (folder / name).stat().st_size)
        for name in ("qrels/test.tsv", "queries.jsonl", "corpus.jsonl")]
    assert sets.files[1]["sha256"] == hashlib.sha256((folder / "queries.jsonl").read_bytes()).hexdigest()
    assert evalset_checksums([str(folder)]) == sets.files


def test_beir_without_qrels_takes_every_query(tmp_path):
    folder = tmp_path / "plainbeir"
    folder.mkdir()
    (folder / "queries.jsonl").write_text('{"_id": "a", "text": "first question about rivers"}\n'
                                          '{"_id": "b", "text": "second question about lakes"}\n')
    sets = read_evalsets([str(folder)])
    assert sets.counts["plainbeir"]["queries"] == 2 and sets.counts["plainbeir"]["passages"] == 0


def test_plain_files(tmp_path):
    (tmp_path / "dev.jsonl").write_text('{"_id": "x1", "text": "how tall is mount everest"}\n\n'
                                        '{"id": 7, "text": "when did the berlin wall fall"}\n'
                                        '{"text": "what do pandas eat in the wild"}\n')
    (tmp_path / "queries.tsv").write_text("qid\tquery\n11\twhat is the speed of light\n"
                                          "a text without an id\n")
    with gzip.open(tmp_path / "more.txt.gz", "wt") as out:
        out.write("how many moons does jupiter have\n")
    sets = read_evalsets([str(tmp_path / "dev.jsonl"), str(tmp_path / "queries.tsv"), str(tmp_path / "more.txt.gz")])
    assert sets.index.sizes() == {"dev": 3, "more": 1, "queries": 2}
    assert _texts(sets.index, "How tall is Mount Everest?") == ("dev", "x1")
    assert _texts(sets.index, "When did the Berlin Wall fall?") == ("dev", "7")
    assert _texts(sets.index, "What do pandas eat in the wild?") == ("dev", "line 4")
    assert _texts(sets.index, "What is the speed of light?") == ("queries", "11")
    assert _texts(sets.index, "a text without an id") == ("queries", "line 3")
    assert _texts(sets.index, "qid query") is None
    assert _texts(sets.index, "How many moons does Jupiter have?") == ("more", "line 1")
    gz = tmp_path / "more.txt.gz"
    assert sets.files[-1]["sha256"] == hashlib.sha256(gz.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"text": "fine"}\n{"text": broken}\n', "bad.jsonl: line 2: not JSON"),
    ("notext.jsonl", '{"_id": "1", "query": "no text field"}\n', "notext.jsonl: line 1: expected an object"),
    ("latin.tsv", b"1\tcaf\xe9 au lait\n", "latin.tsv: line 1: not UTF-8"),
    ("empty.tsv", "\n\n", "empty.tsv: the evaluation set 'empty' has no text"),
    ("cut.jsonl.gz", gzip.compress(b'{"text": "a question"}\n' * 50, mtime=0)[:-12], "cut.jsonl.gz: the gzip data ends early"),
    ("notes.md", "# not an evaluation set\n", "notes.md: neither a BEIR folder"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    with pytest.raises(EvalSetError) as caught:
        read_evalsets([str(path)])
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_bad_evaluation_sets(tmp_path):
    with pytest.raises(EvalSetError, match="missing.jsonl: no such evaluation file"):
        read_evalsets([str(tmp_path / "missing.jsonl")])
    folder = _beir(tmp_path / "beir", [{"_id": "1", "text": "a query"}], [],
                   {"test.tsv": "query-id\tcorpus-id\tscore\n1\td1\tmany\n"})
    with pytest.raises(EvalSetError, match=r"test.tsv: line 2: the score 'many' is not an integer"):
        read_evalsets([str(folder)])
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\n")
    with pytest.raises(EvalSetError, match=r"test.tsv: line 2: expected query-id<TAB>corpus-id<TAB>score"):
        read_evalsets([str(folder)])
    (tmp_path / "beir.jsonl").write_text('{"text": "a query"}\n')
    with pytest.raises(EvalSetError, match="a second evaluation set named 'beir'"):
        read_evalsets([str(folder), str(tmp_path / "beir.jsonl")])


def test_corpus_lines_are_parsed_only_when_relevant(tmp_path):
    """A BEIR corpus of passages nobody judged is skimmed by id; a relevant passage whose
    line is written in another key order is still found."""
    folder = _beir(tmp_path / "big", [{"_id": "q", "text": "which passage is relevant here"}],
                   [{"_id": f"p{n}", "title": "", "text": f"filler passage number {n}"} for n in range(2000)]
                   + [{"text": "the relevant passage about quantum tunnelling", "_id": "rel"}],
                   {"test.tsv": "q\trel\t1\n"})
    sets = read_evalsets([str(folder)])
    assert sets.counts["big"]["passages"] == 1
    assert _texts(sets.index, "The relevant passage about quantum tunnelling.") == ("big", "corpus:rel")
