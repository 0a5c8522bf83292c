"""Quora source: pair rules, the real excerpt, the bundled sample and bad input."""
import gzip
import io

import pytest

from pipelines.sources import quora
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

DATASET = "quora_triplets"
HEADER = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"


def _pairs(data: bytes):
    return list(quora.read_pairs(io.BytesIO(data), "quora/quora_duplicate_questions.tsv"))


def _reason(item):
    return item.value["reason"]


# -- parsing ------------------------------------------------------------------------------

def test_parse_pair_accepts_a_valid_record():
    pair, reason, _ = quora.parse_pair(["7", "15", "16", "How?", "Why?", "1"])
    assert reason is None
    assert pair == {"id": 7, "qid1": 15, "qid2": 16, "question1": "How?", "question2": "Why?",
                    "duplicate": True}


@pytest.mark.parametrize("fields, reason", [
    (["1", "2", "3", "a?", "b?"], "wrong_field_count"),
    (["1", "2", "x", "a?", "b?", "0"], "bad_id"),
    (["1", "2", "3", "a?", "  ", "0"], "missing_question"),
    (["1", "2", "3", "a?", "b?", "2"], "bad_is_duplicate"),
    (["1", "2", "2", "a?", "a?", "1"], "same_question"),
    (["1", "2", "3", "caf\udce9?", "b?", "0"], "bad_encoding"),
])
def test_parse_pair_rejects(fields, reason):
    pair, got, detail = quora.parse_pair(fields)
    assert pair is None and got == reason and detail


def test_reader_uses_csv_quoting_and_keeps_multiline_fields():
    data = (HEADER + '0\t1\t2\t"Use ""&"" or ""and""?"\t"first line\nsecond line"\t0\n'
            "1\t3\t4\tA?\tB?\t1\n").encode()
    pairs = _pairs(data)
    assert [p["id"] for p in pairs] == [0, 1]
    assert pairs[0]["question1"] == 'Use "&" or "and"?'
    assert pairs[0]["question2"] == "first line\nsecond line"


def test_reader_rejects_a_file_without_the_header():
    assert _pairs(b"") == []  # no byte at all: ReadFiles records empty_file
    assert [_reason(r) for r in _pairs(b"0\t1\t2\tA?\tB?\t0\n")] == ["malformed_file"]


def test_reader_rejects_invalid_utf8_in_one_record_only():
    items = _pairs(HEADER.encode() + b"0\t1\t2\tcaf\xe9?\tB?\t0\n1\t3\t4\tA?\tB?\t0\n")
    assert _reason(items[0]) == "bad_encoding" and items[0].value["record_id"] == "0"
    assert items[1]["id"] == 1


# -- pair rules ---------------------------------------------------------------------------

def test_anchor_directions():
    assert quora.anchor_directions("both") == [("1", "2"), ("2", "1")]
    assert quora.anchor_directions("question1") == [("1", "2")]


def _anchor(**extra):
    return {"qid": 1, "positive_qid": 2, "anchor": "How do I cook rice?",
            "positive": "What is the best way to cook rice?", "duplicate_qids": frozenset({2, 5}),
            **extra}


def test_pick_negative_excludes_positive_duplicates_and_same_text():
    candidates = [{"qid": 2, "text": "x"}, {"qid": 5, "text": "y"},
                  {"qid": 6, "text": "how do I  cook rice?"}, {"qid": 7, "text": "How do I cook pasta?"}]
    assert quora.pick_negative(_anchor(), candidates, "quora")["qid"] == 7
    assert quora.pick_negative(_anchor(), candidates[:3], "quora") is None


def test_pick_negative_is_deterministic_and_order_free():
    candidates = [{"qid": q, "text": f"Question {q}?"} for q in range(10, 30)]
    chosen = quora.pick_negative(_anchor(), candidates, "quora")
    assert quora.pick_negative(_anchor(), list(reversed(candidates)), "quora") == chosen
    expected = min(range(10, 30), key=lambda q: quora.negative_rank("quora", 1, 2, q))
    assert chosen["qid"] == expected
    seeds = {quora.pick_negative(_anchor(), candidates, seed)["qid"] for seed in ("a", "b", "c", "d", "e")}
    assert len(seeds) > 1  # the seed changes the draw


def test_triplet_row():
    row = quora.triplet({**_anchor(), "pair_id": 4, "source_file": "quora/f.tsv"},
                        {"qid": 7, "text": "How do I cook pasta?", "pair_id": 9})
    assert (row["anchor"], row["positive"], row["negative"]) == (
        "How do I cook rice?", "What is the best way to cook rice?", "How do I cook pasta?")
    assert row["record_id"] == "pair 4: 1->2 negative 7 (pair 9)"


# -- real excerpt -------------------------------------------------------------------------

def test_real_excerpt_parses_every_row(upstream_samples):
    path = upstream_samples / "quora" / "quora_duplicate_questions.tsv"
    pairs = _pairs(path.read_bytes())
    assert [p["id"] for p in pairs] == list(range(14))
    assert pairs[8]["question2"] == 'When do you use "&" instead of "and"?'
    assert pairs[8]["question1"] == "When do you use シ instead of し?"
    assert [p["id"] for p in pairs if p["duplicate"]] == [5, 7, 11, 12, 13]


def test_real_excerpt_build(upstream_samples, tmp_path):
    # Every qid of the excerpt occurs once, so no anchor has a non-duplicate partner:
    # the five duplicate pairs give ten candidate anchors and no triplet.
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET])
    assert result.rows[DATASET] == []
    assert result.reasons(DATASET) == {"no_negative": 10}
    ids = sorted(r["record_id"] for r in result.rejects[DATASET])
    assert ids[:2] == ["pair 11: 23->24", "pair 11: 24->23"]


# -- bundled sample -----------------------------------------------------------------------

def test_sample_build_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET])
    entry = result.manifest["datasets"][DATASET]
    assert entry["verdict"] == "match", entry.get("problems")
    triplets = result.pairs(DATASET)
    assert ("What is the best way to learn \"machine learning\" from scratch?",
            "How should a beginner start with machine learning?",
            "Is machine learning the same thing as statistics?") in triplets
    assert ("What is the fastest way to learn guitar?", "How do I learn to play the guitar quickly?",
            "Which guitar brand is best for beginners?") in triplets
    negatives_of_1 = {n for a, p, n in triplets if a == "How do I learn to play the guitar quickly?"}
    assert negatives_of_1 <= {"How do I tune a guitar without a tuner?",
                              "What are the best songs to play on guitar?"}
    assert len(negatives_of_1) == 1


def test_sample_with_question1_direction(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET],
                       source_options={"quora": {"directions": "question1"}})
    assert len(result.rows[DATASET]) == 4
    assert result.reasons(DATASET)["no_negative"] == 1


# -- bad input ----------------------------------------------------------------------------

def test_bad_files_are_counted_not_fatal(tmp_path):
    folder = tmp_path / "in" / "quora"
    folder.mkdir(parents=True)
    (folder / "quora_duplicate_questions.tsv").write_bytes(b"")  # empty: the core's empty_file
    (folder / "sub").mkdir()
    (folder / "sub" / "quora_duplicate_questions.tsv").write_bytes(b"id,qid1\n")  # no TSV header
    good = HEADER + "0\t1\t2\tA?\tB?\t1\n1\t1\t3\tA?\tC?\t0\n"
    (folder / "quora_duplicate_questions.tsv.bz2").write_text(good)  # named .bz2, plain text
    (folder / "quora_duplicate_questions.tsv.gz").write_bytes(gzip.compress(good.encode())[:30])
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.pairs(DATASET) == {("A?", "B?", "C?")}
    assert result.reasons(DATASET) == {"empty_file": 1, "malformed_file": 1, "no_negative": 1,
                                       "unreadable_file": 1}


class TestQuoraSample(SourceCase):
    SOURCE = "quora"
    ROWS = {"quora_triplets": 7}
