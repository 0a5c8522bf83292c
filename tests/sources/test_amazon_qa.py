"""Amazon QA: safe literal parsing, both releases, the real excerpts, the sample, bad input."""
import gzip
import json
import os

import pytest

from pipelines.corpus.rejects import REJECTED
from pipelines.sources import amazon_qa as aq
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

DATASET = "amazon_qa"


# -- parse_record ------------------------------------------------------------------------------

def test_python_literal_line():
    line = "{'question': \"Can't it fit?\", 'answer': 'Yes.', 'answerType': None, 'unixTime': 1403852400}"
    assert aq.parse_record(line) == {"question": "Can't it fit?", "answer": "Yes.", "answerType": None,
                                     "unixTime": 1403852400}


def test_json_line_is_parsed_as_json():
    # "\/" and a surrogate pair mean "/" and one emoji in JSON, not in Python.
    assert aq.parse_record('{"question": "A\\/B?", "answer": "ok \\ud83d\\ude00", "x": null}') == {
        "question": "A/B?", "answer": "ok \U0001F600", "x": None}


def test_python_literal_with_double_quoted_keys_falls_back_to_literal_eval():
    assert aq.parse_record('{"question": "q?", "answer": None}') == {"question": "q?", "answer": None}


def test_lines_that_call_functions_are_rejected_and_never_run(tmp_path):
    marker = tmp_path / "executed"
    for line in (f"__import__('pathlib').Path({str(marker)!r}).touch()",
                 f"{{'question': open({str(marker)!r}, 'w'), 'answer': 'a'}}",
                 "{'question': 'q', 'answer': (lambda: 'a')()}",
                 "[x for x in range(10)]", "{'a': 1} if True else 0"):
        with pytest.raises(ValueError):
            aq.parse_record(line)
    assert not marker.exists()


@pytest.mark.parametrize("line", ["", "{'question': 'q'", "{'a': }", "[" * 100_000, "{" * 50_000,
                                  "{'question': 'q' 'answer': 'a'}"])
def test_unparsable_lines_raise_value_error(line):
    with pytest.raises(ValueError):
        aq.parse_record(line)


# -- text ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("I\xe2\x80\x99m sure", "I\u2019m sure"),   # Python 2 wrote UTF-8 bytes as \xNN escapes
    ("caf\xe9", "caf\xe9"),                      # real Latin-1 text stays
    ("na\u00efve \u2014 ok", "na\u00efve \u2014 ok"),
    ("plain", "plain"),
])
def test_repair_byte_escapes(text, expected):
    assert aq.repair_byte_escapes(text) == expected


def test_clean_text_decodes_entities():
    assert aq.clean_text("What&#39;s 27&quot; &amp; up?") == 'What\'s 27" & up?'


# -- file choice -----------------------------------------------------------------------------------

def test_choose_category_files_reads_one_copy_per_release_and_category():
    read, duplicates = aq.choose_category_files([
        "b/qa_Appliances.json.gz", "a/qa_Appliances.json", "qa_Toys.json.gz", "x/qa_Toys.json.gz",
        "QA_Toys.json.gz", "README.md", "qa_Toys.txt", "old/qa_Books.jsonl.bz2"])
    assert read == ["QA_Toys.json.gz", "a/qa_Appliances.json", "old/qa_Books.jsonl.bz2", "qa_Toys.json.gz"]
    assert duplicates == [("b/qa_Appliances.json.gz", "a/qa_Appliances.json"),
                          ("x/qa_Toys.json.gz", "qa_Toys.json.gz")]


# -- pair rules ---------------------------------------------------------------------------------------

def _split(items):
    rows = [i for i in items if isinstance(i, dict)]
    rejects = [i.value for i in items if not isinstance(i, dict)]
    assert all(i.tag == REJECTED for i in items if not isinstance(i, dict))
    return rows, rejects


def test_single_answer_record_gives_one_pair():
    rows, rejects = _split(list(aq.record_pairs(
        {"asin": "B1", "question": "Fits?", "answer": "yes."}, "amazon_qa/qa_X.json.gz", "B1 line 1")))
    assert [(r["anchor"], r["positive"], r["record_id"]) for r in rows] == [("Fits?", "yes.", "B1 line 1")]
    assert rejects == []


def test_multi_answer_record_gives_one_pair_per_answer():
    record = {"asin": "B2", "questions": [
        {"questionText": "Q1?", "answers": [{"answerText": "A1"}, {"answerText": "A2"}, {"answererID": "x"}]},
        {"questionText": "Q2?", "answers": []},
        {"questionText": "Q3?"},
        {"questionText": 3, "answers": [{"answerText": "A4"}]},
        "not a dict",
        {"questionText": "Q5?", "answers": {"answerText": "A5"}},
        {"questionText": "Q6?", "answers": [{"answerText": ["A6"]}, {"answerText": "A6 &amp; more"}]},
    ]}
    rows, rejects = _split(list(aq.record_pairs(record, "amazon_qa/QA_X.json.gz", "B2 line 1")))
    assert [(r["anchor"], r["positive"], r["record_id"]) for r in rows] == [
        ("Q1?", "A1", "B2 line 1 q1 a1"), ("Q1?", "A2", "B2 line 1 q1 a2"), ("Q6?", "A6 & more", "B2 line 1 q7 a2")]
    assert [(r["reason"], r["record_id"]) for r in rejects] == [
        ("missing_field", "B2 line 1 q1 a3"), ("no_answer", "B2 line 1 q2"), ("no_answer", "B2 line 1 q3"),
        ("bad_field", "B2 line 1 q4"), ("bad_field", "B2 line 1 q5"), ("bad_field", "B2 line 1 q6"),
        ("bad_field", "B2 line 1 q7 a1")]


@pytest.mark.parametrize("record, reason", [
    (["a", "list"], "not_an_object"), ({"asin": "B3", "title": "t"}, "unknown_record_shape"),
    ({"question": "q?"}, "missing_field"), ({"answer": "a"}, "missing_field"),
    ({"question": "q?", "answer": 5}, "bad_field"), ({"question": None, "answer": "a"}, "bad_field"),
    ({"questions": None}, "bad_field"),
])
def test_bad_records_are_rejects(record, reason):
    rows, rejects = _split(list(aq.record_pairs(record, "f", "line 1")))
    assert rows == [] and [r["reason"] for r in rejects] == [reason]


# -- builds ------------------------------------------------------------------------------------------

REAL_PAIRS = {  # hand-picked from qa_Appliances (19 records, strict-JSON copy and Python-literal copy)
    ("I have a 9 year old Badger 1 that needs replacing, will this Badger 1 install just like the original one?",
     "I replaced my old one with this without a hitch."),
    ("model number", "This may help InSinkErator Model BADGER-1: Badger 1 1/3 HP Garbage Disposal PRODUCT "
                     "DETAILS - Bellacor Number:309641 / UPC:050375000419 Brand SKU:500181"),
    ("is there a connection for the dish washer", "yes."),
    ("Will this keep pour-over coffee carafe contents warmed atop a gas range flame?",  # '15 days ago', no unixTime
     "Probably, and maybe too much. I use mine to prepare small batches of sauce (experimental stuff) and it's "
     "hot enough, even with the gas on low on my middle size burner, to get a slow boil. I would not recommend "
     "a glass carafe, personal preference, but a metal type."),
    ("where is the reset button located", "on the bottom"),
}


def _build_one_copy(tmp_path, upstream_samples, subfolder):
    # A temporary input root holding only this copy, so the two copies are never counted together.
    root = tmp_path / subfolder / "in"
    (root / "amazon_qa").mkdir(parents=True)
    name = next((upstream_samples / "amazon_qa" / subfolder).iterdir()).name
    (root / "amazon_qa" / name).symlink_to(upstream_samples / "amazon_qa" / subfolder / name)
    return run_conserved_build(tmp_path / subfolder / "out", input_root=root, datasets=[DATASET])


def test_real_excerpt_in_both_containers_gives_the_same_19_pairs(tmp_path, upstream_samples):
    strict = _build_one_copy(tmp_path, upstream_samples, "as_found_strict_json")
    literal = _build_one_copy(tmp_path, upstream_samples, "derived_python_literal")
    for result in (strict, literal):
        assert result.manifest["datasets"][DATASET]["rows"] == 19
        assert result.reasons(DATASET) == {}
        assert {(a, p) for a, p, _n in result.pairs(DATASET)} >= REAL_PAIRS
    assert strict.pairs(DATASET) == literal.pairs(DATASET)
    assert len(strict.pairs(DATASET)) == 19
    ids = sorted(r["record_id"] for r in literal.rows[DATASET])
    assert ids[0] == "B00004U9JO line 10" and ids[-1] == "B00004W4UJ line 19"


def test_real_excerpt_folder_reads_one_copy_and_rejects_the_other(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET])
    assert result.manifest["datasets"][DATASET]["rows"] == 19
    assert result.reasons(DATASET) == {"duplicate_file": 1}
    (reject,) = result.rejects[DATASET]
    assert reject["source_file"] == "amazon_qa/derived_python_literal/qa_Appliances.json.gz"
    assert "amazon_qa/as_found_strict_json/qa_Appliances.json" in reject["detail"]
    assert [i["path"] for i in result.manifest["inputs"]] == ["amazon_qa/as_found_strict_json/qa_Appliances.json"]


def test_bundled_sample_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET])
    entry = result.manifest["datasets"][DATASET]
    assert entry["verdict"] == "match", entry.get("problems")
    pairs = result.pairs(DATASET)
    assert ("Is the lint trap easy to reach?", "I\u2019m short and I can reach it without bending down.", None) in pairs
    assert ('What\'s the difference between the 27" and 29" models?', "Only the drum size & the price.", None) in pairs


def test_bad_files_end_in_counted_rejects(tmp_path):
    folder = tmp_path / "in" / "amazon_qa"
    (folder / "copy").mkdir(parents=True)
    good = repr({"asin": "B9", "question": "Does it work?", "answer": "It does."})
    # Named .gz but plain text, with a line that tries to run code and a deeply nested one.
    (folder / "qa_Books.json.gz").write_text(
        good + "\n__import__('os').system('touch /tmp/amazon-qa-owned')\n" + "[" * 100_000 + "\n")
    (folder / "copy" / "qa_Books.json").write_text(good + "\n")
    (folder / "qa_Electronics.json.gz").write_bytes(gzip.compress(b"\n" * 100_000)[:-12])
    (folder / "qa_Toys.json.gz").write_bytes(b"")
    (folder / "QA_Books.json.gz").write_bytes(gzip.compress(
        (json.dumps({"asin": "B8", "questions": [{"questionText": 12, "answers": []}]}) + "\n").encode()
        + "{'asin': 'B7', 'questions': [{'questionText': 'caf\xe9?', 'answers': []}]}\n".encode("latin-1")
        + "{'question': 'q?'}\n".encode("utf-16")))
    (folder / "README.txt").write_text("not a category file\n")
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.pairs(DATASET) == {("Does it work?", "It does.", None)}
    # bad_literal: the code line, the nested line, and the NUL byte that follows the UTF-16
    # line's newline; bad_encoding: the Latin-1 line and the UTF-16 line (BOM 0xFF 0xFE).
    assert result.reasons(DATASET) == {
        "bad_encoding": 2, "bad_field": 1, "bad_literal": 3, "duplicate_file": 1, "empty_file": 1,
        "unreadable_file": 1}
    assert not os.path.exists("/tmp/amazon-qa-owned")
    # The parser's complaint names the node it refused, without its memory address (which
    # would make the dead letters differ from process to process).
    code_line = next(r for r in result.rejects[DATASET] if r["excerpt"].startswith("__import__"))
    assert "<ast.Call object>" in code_line["detail"] and "0x" not in code_line["detail"]


class TestAmazonQaSample(SourceCase):
    SOURCE = "amazon_qa"
    ROWS = {"amazon_qa": 15}
