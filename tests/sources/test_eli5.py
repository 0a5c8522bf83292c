"""ELI5: rule functions, the streaming array reader, the real upstream excerpt, the bundled
sample, bad input."""
import gzip
import io
import json

import ijson
import pytest

from pipelines.sources import eli5
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase


def _answer(score, rank, text="t", a_id=None):
    return {"a_id": a_id or f"a{rank}", "text": text, "score": score, "rank": rank}


OPTIONS = {"min_relative_score": 0.5, "max_answers": 2, "url_tokens": "drop"}


def _read(data: bytes, sink: list):
    """Read ``data`` as one ELI5 file into ``sink`` (kept when reading raises)."""
    for item in eli5._RecordReader(OPTIONS)(io.BufferedReader(io.BytesIO(data)), "eli5/train.json"):
        sink.append(item)
    return sink


def _reasons(items):
    return [item.value["reason"] for item in items if not isinstance(item, tuple)]


# -- rule functions ---------------------------------------------------------------------

def test_select_best_plus_close_second_up_to_the_cap():
    answers = [_answer(50, 0), _answer(30, 1), _answer(28, 2)]
    assert [a["rank"] for a in eli5.select_answers(answers)] == [0, 1]
    assert [a["rank"] for a in eli5.select_answers(answers, max_answers=3)] == [0, 1, 2]
    assert [a["rank"] for a in eli5.select_answers(answers, max_answers=1)] == [0]
    assert [a["rank"] for a in eli5.select_answers([_answer(44, 0), _answer(5, 1)])] == [0]


def test_select_ranks_by_score_then_position_and_handles_missing_scores():
    assert [a["rank"] for a in eli5.select_answers([_answer(3, 0), _answer(5, 1)])] == [1, 0]
    assert [a["rank"] for a in eli5.select_answers([_answer(None, 0), _answer(None, 1)])] == [0]
    assert [a["rank"] for a in eli5.select_answers([_answer(None, 0), _answer(2, 1)])] == [1]
    assert eli5.select_answers([]) == []


def test_clean_text_urls_entities_and_quotes():
    assert eli5.clean_text("see [this]( URL_0 ) &amp; _URL_1_ now") == "see this & now"
    assert eli5.clean_text("see [this]( URL_0 )", url_tokens="keep") == "see [this]( URL_0 )"
    assert eli5.clean_text("&gt; quoted\n\n> > nested\nreply") == "quoted nested reply"
    assert eli5.clean_text("MY_URL_1 stays") == "MY_URL_1 stays"
    assert eli5.is_deleted(" [deleted] ") and eli5.is_deleted("[removed]")
    assert not eli5.is_deleted("[deleted] but more")


def test_split_of_file_names():
    assert eli5.split_of("eli5-category-train.json.gz") == "train"
    assert eli5.split_of("eli5-category-validation-2.json.gz") == "validation"
    assert eli5.split_of("eli5-dev-kilt.jsonl") == "validation"
    assert eli5.split_of("eli5-test_without_answers-kilt.jsonl") == "test"
    assert eli5.split_of("hf_eli5_README_example.jsonl") == "train"


def test_record_formats():
    kilt = eli5.question_from_record({"id": "k", "input": "Q", "output": [
        {"answer": "A", "meta": {"score": 3}}, {"provenance": []}, {"answer": "B"}]})
    assert kilt["format"] == "kilt"
    assert [(a["text"], a["score"]) for a in kilt["answers"]] == [("A", 3), ("B", None)]
    hf = eli5.question_from_record({"q_id": "h", "title": "T", "answers": {
        "a_id": ["x"], "text": ["A"], "score": [2]}})
    assert hf["format"] == "hf" and hf["answers"][0]["a_id"] == "x"
    for bad in ({"q_id": "h", "title": 3, "answers": {}},
                {"q_id": "h", "title": "T", "answers": {"text": "A"}},
                {"q_id": "h", "title": "T", "answers": {"a_id": ["x"], "text": ["A"], "score": [1, 2]}},
                {"id": "k", "input": "Q", "output": {}},
                {"something": "else"}):
        with pytest.raises(ValueError):
            eli5.question_from_record(bad)


def test_evaluate_question_rejects():
    options = {"min_relative_score": 0.5, "max_answers": 2, "url_tokens": "drop"}
    question = {"q_id": "q", "title": "T", "subreddit": "explainlikeimfive", "source_file": "f",
                "answers": [_answer(9, 0, "[deleted]"), _answer(8, 1, "same"), _answer(7, 2, "same"),
                            _answer(6, 3, " URL_0 "), _answer(5, 4, 42), _answer(1, 5, "low")]}
    outcome = eli5.evaluate_question(question, options)
    assert [(r["anchor"], r["positive"]) for r in outcome["rows"]] == [("T", "same")]
    assert [r["reason"] for r in outcome["rejects"]] == [
        "deleted_answer", "duplicate_answer", "empty_answer", "malformed_record"]


# -- reading files --------------------------------------------------------------------------

def _hf(q_id: str) -> dict:
    return {"q_id": q_id, "title": f"Why {q_id}?", "subreddit": "explainlikeimfive",
            "answers": {"a_id": ["a"], "text": ["Because."], "score": [3]}}


def test_array_file_is_streamed_and_a_break_raises_after_the_elements_before_it():
    data = json.dumps([_hf("q1"), "oops", _hf("q2")]).encode()
    items = _read(data, [])
    assert [item[0] for item in items if isinstance(item, tuple)] == ["q1", "q2"]
    assert _reasons(items) == ["not_an_object"]
    items = []
    with pytest.raises(ijson.JSONError):
        _read(data[:data.index(b'"q2"')], items)
    assert [item[0] for item in items if isinstance(item, tuple)] == ["q1"]


def test_layout_of_empty_blank_and_other_files():
    assert _read(b"", []) == []  # no byte at all: ReadFiles records empty_file
    assert _reasons(_read(b" \n\n", [])) == ["blank_file"]
    assert _reasons(_read(b"<html>", [])) == ["malformed_file"]
    assert [item[0] for item in _read(b"\xef\xbb\xbf" + json.dumps([_hf("q3")]).encode(), [])] == ["q3"]


# -- builds -------------------------------------------------------------------------------

def test_real_excerpt_train_split(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=["eli5"])
    ids = sorted(row["record_id"] for row in result.rows["eli5"])
    assert ids == sorted([
        # KILT train: scores 3,2,2,2 / 14,5,3 / 8 / 9,5,3,2,2,2 / 4
        "1oy5tc/answer 0", "1oy5tc/answer 1", "2lojul/answer 0", "8v5e3s/answer 0",
        "1v3wij/answer 0", "1v3wij/answer 1", "2jlp6f/answer 0",
        # ELI5-Category train: 44,5,4 / 195,39,5 / 34,11,7,7 / 8 / 9,4
        "5lchat/dbuoyxl", "5lcjq6/dbuplm8", "5lcl43/dbuns7l", "5lcr1h/dbuusst", "5lcsyf/dbuq0qt",
        # the HF README record: 5, 2
        "8houtx/dylcnfk"])
    assert ("Why does water heated to room temperature feel colder than the air around it?",
            "Water transfers heat more efficiently than air. When something feels cold it's because "
            "heat is being transferred from your skin to whatever you're touching. Since water absorbs "
            "the heat more readily than air, it feels colder.", None) in result.pairs("eli5")
    answer = next(r for r in result.rows["eli5"] if r["record_id"] == "2lojul/answer 0")
    assert answer["anchor"].startswith("Why are different tiers (regular < mid < premium)")
    assert result.reasons("eli5") == {}


def test_real_excerpt_all_splits(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=["eli5"],
                       source_options={"eli5": {"splits": "train,validation,test"}})
    rows = {row["record_id"]: row for row in result.rows["eli5"]}
    # 20 ELI5-Category questions give 24 pairs (22,12 / 9,6 / 16,10 / 4,3 add a second).
    category = [r for r in rows.values() if "eli5_category" in r["source_file"]]
    assert len(category) == 24
    assert {"5lcw7q/dbuqun9", "5lcw7q/dbuqji6"} <= set(rows)
    # KILT dev answers have no scores: the first answer only; URL placeholders removed.
    assert "1kiwfx/answer 0" in rows and "1kiwfx/answer 1" not in rows
    assert len(rows) == 37
    assert result.reasons("eli5") == {"no_answer": 5}
    assert not any("URL_" in r["positive"] for r in rows.values())


def test_bundled_sample_matches(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=["eli5"])
    entry = result.manifest["datasets"]["eli5"]
    assert entry["verdict"] == "match", entry.get("problems")
    rows = {row["record_id"]: row for row in result.rows["eli5"]}
    assert rows["5lq002/dbx02a"]["source_file"] == "eli5/hf_eli5/train_eli5.jsonl.gz"
    assert rows["5lq002/dbx02a"]["positive"].endswith("Here is a diagram & a longer explanation.")


def test_bad_inputs_become_counted_rejects(tmp_path):
    root = tmp_path / "in" / "eli5"
    root.mkdir(parents=True)
    good = {"q_id": "g1", "title": "Why?", "subreddit": "explainlikeimfive",
            "answers": {"a_id": ["a"], "text": ["Because."], "score": [3]}}
    (root / "train_a.jsonl.gz").write_bytes(json.dumps(good).encode() + b"\n\xff\xfe\n{bad\n")
    (root / "train_b.json.gz").write_bytes(gzip.compress(b"[" + json.dumps({**good, "q_id": "g2"}).encode()
                                                         + b", 5")[:-4])
    (root / "train_c.jsonl").write_bytes(b"")
    (root / "train_d.jsonl").write_bytes(b"<html>not json</html>")
    (root / "train_e.json").write_bytes(b'[{"q_id": "g3", "title": "caf\xe9"}]')
    (root / "train_f.jsonl").write_bytes(b'{"q_id": "g4", "title": "T", "answers": []}\n')
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=["eli5"])
    assert result.pairs("eli5") == {("Why?", "Because.", None)}
    assert result.reasons("eli5") == {
        "bad_encoding": 1, "bad_json": 1, "empty_file": 1, "malformed_file": 1,
        "malformed_record": 1, "unreadable_file": 2}


class TestEli5Sample(SourceCase):
    SOURCE = "eli5"
    ROWS = {"eli5": 12}
