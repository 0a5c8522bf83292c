"""Yahoo Answers: rule functions, the real upstream excerpt, the bundled sample, bad input."""
import gzip
import io
import tarfile
from collections import Counter

import pyarrow as pa
import pytest

from pipelines.sources import yahoo_answers as ya
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

ALL = [ya.TITLE_ANSWER, ya.QUESTION_ANSWER, ya.TITLE_QUESTION]


def _parse(data: bytes):
    items = list(ya.read_csv(io.BufferedReader(io.BytesIO(data)), "f.csv", ya.TITLE_ANSWER))
    records = [r for i in items if isinstance(i, pa.Table) for r in i.to_pylist()]
    rejects = [i.value for i in items if not isinstance(i, pa.Table)]
    return records, rejects


# -- rule functions ---------------------------------------------------------------------

def test_escaped_newlines_and_html_become_text():
    records, rejects = _parse(b'"1","T","C","a<br />\\nb &amp; c"\n')
    assert rejects == []
    assert records[0]["answer"] == "a b & c"


def test_doubled_quotes_and_real_line_break_inside_a_field():
    records, _ = _parse(b'"1","Who sang ""Hey""?","first\nsecond","x"\n"2","T2","","y"\n')
    assert [r["title"] for r in records] == ['Who sang "Hey"?', "T2"]
    assert records[0]["content"] == "first second"
    assert [r["record_id"] for r in records] == ["line 1", "line 3"]


def test_unclosed_quote_is_rejected_and_the_next_record_still_read():
    records, rejects = _parse(b'"1","T","C","never closed\n"2","T2","C2","A2"\n')
    assert [r["title"] for r in records] == ["T2"]
    assert [r["reason"] for r in rejects] == ["malformed_row"]


@pytest.mark.parametrize("line", [b'"1","T","C"', b'"11","T","C","A"', b'"x","T","C","A"',
                                  b'"1","T","C","A","E"'])
def test_rows_that_are_not_yahoo_rows_are_malformed(line):
    records, rejects = _parse(line + b"\n")
    assert records == [] and [r["reason"] for r in rejects] == ["malformed_row"]


def test_file_of_blank_lines_is_a_blank_file_reject():
    records, rejects = _parse(b"\n  \n")
    assert records == [] and [r["reason"] for r in rejects] == ["blank_file"]
    assert _parse(b"") == ([], [])  # no byte at all: ReadFiles records empty_file


def test_pair_problem_order_and_identical_texts():
    assert ya.pair_problem("title", "", "answer", "") == "empty_title"
    assert ya.pair_problem("title", "t", "answer", "") == "empty_answer"
    assert ya.pair_problem("title", "same", "content", "same") == "identical_texts"
    assert ya.pair_problem("title", "t", "content", "c") is None


def test_each_pair_rule_takes_its_fields():
    qa = {"title": "T", "content": "C", "answer": "A", "source_file": "f", "record_id": "line 1"}
    assert (ya.title_answer_pair(qa)["anchor"], ya.title_answer_pair(qa)["positive"]) == ("T", "A")
    assert (ya.question_answer_pair(qa)["anchor"], ya.question_answer_pair(qa)["positive"]) == ("C", "A")
    assert (ya.title_question_pair(qa)["anchor"], ya.title_question_pair(qa)["positive"]) == ("T", "C")


def test_csv_split_and_options():
    assert ya.csv_split("train.csv") == "train" and ya.csv_split("test.csv.gz") == "test"
    assert ya.csv_split("classes.txt") is None
    with pytest.raises(ValueError):
        ya.parse_splits("dev")


# -- builds -------------------------------------------------------------------------------

def test_real_excerpt_train_rows(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=ALL)
    title_answer = result.pairs(ya.TITLE_ANSWER)
    assert len(title_answer) == 5
    assert ("What is the best off-road motorcycle trail ?",
            "i hear that the mojave road is amazing! search for it online.", None) in title_answer
    assert any(p[0] == "What is Trans Fat? How to reduce that?"
               and 'raises "bad" LDL cholesterol' in p[1] for p in title_answer)
    assert ("How many planes Fedex has?", "I heard that it is the largest airline in the world",
            None) in result.pairs(ya.TITLE_QUESTION)
    assert len(result.pairs(ya.QUESTION_ANSWER)) == 5
    assert len(result.pairs(ya.TITLE_QUESTION)) == 5
    # test.csv (three rows with empty content) is not read by default.
    assert all(sum(r.values()) == 0 for r in map(result.reasons, ALL))


def test_real_excerpt_with_test_split(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=ALL,
                       source_options={"yahoo_answers": {"splits": "train,test"}})
    assert len(result.rows[ya.TITLE_ANSWER]) == 10
    assert len(result.rows[ya.QUESTION_ANSWER]) == 7
    # The three test rows have no content: skipped by question/answer, counted, not dead-lettered.
    assert result.reasons(ya.QUESTION_ANSWER) == {}
    assert result.manifest["datasets"][ya.QUESTION_ANSWER]["accounting"]["records"]["skipped"] == {
        "empty_content": 3}
    assert ("What did the itsy bitsy sipder climb up?", "waterspout", None) in result.pairs(ya.TITLE_ANSWER)


def test_bundled_sample_matches(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=ALL)
    for dataset in ALL:
        entry = result.manifest["datasets"][dataset]
        assert entry["verdict"] == "match", entry.get("problems")
    assert ('Who sang "Bohemian Rhapsody"?',
            "My dad says it was Queen & my mum says it was Elton John.",
            None) in result.pairs(ya.TITLE_QUESTION)


def test_bad_inputs_become_counted_rejects(tmp_path):
    root = tmp_path / "in" / "yahoo_answers"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    (root / "c").mkdir()
    (root / "d").mkdir()
    (root / "a" / "train.csv").write_bytes(b'"1","T\xff","C","A"\n"1","Good title","Body","Answer"\n')
    (root / "b" / "train.csv").write_bytes(b"")
    (root / "c" / "train.csv.gz").write_bytes(b'"1","Plain","not gzip","despite the name"\n')
    (root / "d" / "yahoo_answers_csv.tgz").write_bytes(b"this is not an archive")
    (root / "d" / "train.csv").write_bytes(gzip.compress(b'"1","Gz","body","answer"\n'))
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[ya.TITLE_ANSWER])
    assert result.pairs(ya.TITLE_ANSWER) == {
        ("Good title", "Answer", None), ("Plain", "despite the name", None), ("Gz", "answer", None)}
    assert result.reasons(ya.TITLE_ANSWER) == {"bad_encoding": 1, "empty_file": 1, "unreadable_file": 1}


def test_archive_without_csv_is_counted(tmp_path):
    root = tmp_path / "in" / "yahoo_answers"
    root.mkdir(parents=True)
    with tarfile.open(root / "yahoo_answers_csv.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("yahoo_answers_csv/classes.txt")
        info.size = 6
        tar.addfile(info, io.BytesIO(b"Health"))
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[ya.TITLE_ANSWER])
    assert result.reasons(ya.TITLE_ANSWER) == {"no_member": 1}


def test_sample_archive_is_a_real_tgz():
    path = ya.SOURCE.sample_root() + "/yahoo_answers/yahoo_answers_csv.tgz"
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"


def test_pairs_of_a_table_are_those_of_the_record_rule(monkeypatch):
    """pair_table (vectorised) keeps, rejects and skips, with the same reasons and counts,
    what pair_or_reject decides record by record, for all three datasets."""
    texts = ["", "Same", "Other", "x"]
    records = [{"title": t, "content": c, "answer": a, "source_file": "f", "record_id": f"line {n}"}
               for n, (t, c, a) in enumerate(
                   [(t, c, a) for t in texts for c in texts for a in texts], start=1)]
    table = pa.Table.from_pylist(records, schema=ya.QA_RECORDS)
    counted = Counter()
    monkeypatch.setattr(ya.accounting, "count_read", lambda d, n=1: counted.update({("read", d): n}))
    monkeypatch.setattr(ya.accounting, "count_paired", lambda d, n=1: counted.update({("paired", d): n}))
    monkeypatch.setattr(ya.accounting, "count_skipped",
                        lambda d, reason, n=1: counted.update({("skipped", d, reason): n}))
    for dataset in ALL:
        counted.clear()
        got = list(ya.pair_table(table, dataset))
        by_table = dict(counted)
        counted.clear()
        rows = sorted((r for i in got if isinstance(i, pa.Table) for r in i.to_pylist()),
                      key=lambda r: r["record_id"])
        rejects = sorted((i.value["record_id"], i.value["reason"]) for i in got if not isinstance(i, pa.Table))
        expected = [item for qa in records for item in ya.pair_or_reject(qa, dataset)]
        assert by_table == dict(counted) and counted[("read", dataset)] == len(records)
        assert {key[2] for key in counted if key[0] == "skipped"} == {
            f"empty_{field}" for field in ya._FIELDS[dataset]}
        assert rows == sorted((i for i in expected if isinstance(i, dict)), key=lambda r: r["record_id"])
        assert rejects == sorted((i.value["record_id"], i.value["reason"]) for i in expected
                                 if not isinstance(i, dict))
        assert rows and rejects


class TestYahooAnswersSample(SourceCase):
    SOURCE = "yahoo_answers"
    ROWS = {"yahoo_answers_title_answer": 5, "yahoo_answers_question_answer": 5, "yahoo_answers_title_question": 5}
