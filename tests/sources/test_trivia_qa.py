"""TriviaQA source: pair rules, record streaming, real excerpts, the bundled sample, bad input."""
import bz2
import gzip
import io
import json
from pathlib import Path

import pytest

from pipelines.sources import trivia_qa as tq
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

DATASET = "trivia_qa"


# -- pair rules ---------------------------------------------------------------------------

def test_normalize_answer():
    assert tq.rules.normalize_answer("The Beatles") == ["beatles"]
    assert tq.rules.normalize_answer("UN/LOCODE:GBYRK") == ["un", "locode", "gbyrk"]
    assert tq.rules.normalize_answer("Lewis, (Harry) Sinclair") == ["lewis", "harry", "sinclair"]
    assert tq.rules.normalize_answer("?!") == []


def _index(text):
    words, tokens, owners = tq.rules._word_tokens(text)
    positions = {}
    for i, token in enumerate(tokens):
        positions.setdefault(token, []).append(i)
    return words, tokens, owners, positions


def test_find_answer_matches_whole_tokens_first_occurrence():
    _w, tokens, _o, positions = _index("Published in 1966. A hexagon has 6 sides; 6 angles.")
    span = tq.rules.find_answer(tokens, positions, ["6", "six"])
    assert tokens[span[0] - 1:span[1]] == ["has", "6"]  # not the "6" inside "1966"
    _w, tokens, _o, positions = _index("Its symbol comes from aurum.")
    assert tq.rules.find_answer(tokens, positions, ["au"]) is None


def test_find_answer_prefers_earliest_then_longest():
    words, tokens, owners, positions = _index("Born in York, England, she later left York.")
    span = tq.rules.find_answer(tokens, positions, ["york", "york england"])
    assert [words[owners[i]] for i in range(*span)] == ["York,", "England,"]


def test_cut_passage_centres_the_answer():
    words = [f"w{i}" for i in range(300)]
    assert tq.rules.cut_passage(words, 150, 151, 10).split() == [f"w{i}" for i in range(146, 156)]
    assert tq.rules.cut_passage(words, 2, 2, 10).split()[0] == "w0"
    assert tq.rules.cut_passage(words, 298, 299, 10).split() == [f"w{i}" for i in range(290, 300)]
    assert tq.rules.cut_passage(words, 10, 40, 10).split() == [f"w{i}" for i in range(10, 20)]
    assert tq.rules.cut_passage(words[:5], 1, 1, 10) == "w0 w1 w2 w3 w4"


def test_evidence_rank():
    wiki = {"kind": "wikipedia", "order": 3, "filename": "B.txt"}
    web0 = {"kind": "web", "order": 0, "filename": "1/1_1.txt"}
    assert min([web0, wiki], key=lambda c: tq.rules.evidence_rank(c, "wikipedia")) is wiki
    assert min([wiki, web0], key=lambda c: tq.rules.evidence_rank(c, "web")) is web0


def test_parse_record():
    record = {"Answer": {"Aliases": ["The Seine"], "NormalizedAliases": ["seine"], "Value": "Seine"},
              "EntityPages": [{"Filename": "Seine.txt"}, {"Title": "no file"}],
              "Question": "Which river?", "QuestionId": "q1",
              "SearchResults": [{"Filename": "1/1_2.txt", "Rank": 4}]}
    question, reason, _ = tq.parse.parse_record(record, "train")
    assert reason is None and question["aliases"] == ["seine"]
    assert question["refs"] == [("wikipedia", "Seine.txt", 0), ("web", "1/1_2.txt", 4)]
    assert tq.parse.parse_record({**record, "SearchResults": {}}, "train")[1] == "malformed_record"
    assert tq.parse.parse_record({k: v for k, v in record.items() if k != "Answer"}, "train")[1] == "missing_answer"
    assert tq.parse.parse_record([], "train")[1] == "not_an_object"


def test_iter_record_texts_streams_records_and_detects_truncation():
    text = ('{\n    "Data": [\n        {\n            "QuestionId": "a"\n        },\n'
            '        {\n            "QuestionId": "b"\n        }\n    ],\n    "Split": "train"\n}')
    records = list(tq.parse.iter_record_texts(io.BytesIO(text.encode())))
    assert [(line, json.loads(raw)["QuestionId"]) for line, raw in records] == [(3, "a"), (6, "b")]
    with pytest.raises(EOFError):
        list(tq.parse.iter_record_texts(io.BytesIO(text[:text.index("\"b\"")].encode())))


# -- real excerpts ------------------------------------------------------------------------

def _words(path, start, end):
    return " ".join(path.read_text("utf-8").split()[start:end])


def test_real_excerpt_train(upstream_samples, tmp_path):
    evidence = upstream_samples / "triviaqa" / "triviaqa-rc" / "evidence"
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET])
    rows = {r["record_id"]: r for r in result.rows[DATASET]}
    # tc_1: no entity page; search results Rank 0 (46_46, 87 words) and Rank 4 both
    # name Sinclair Lewis: the whole Rank 0 page.
    # tc_3: the Wikipedia excerpts (England, Judi Dench) never say York; the Rank 1 IMDb
    # page does (word 16, the page has fewer than 100 words).
    # tc_15: the ISDN article never names Japan.
    assert set(rows) == {"tc_1 web/46/46_46.txt", "tc_3 web/100/100_1957043.txt"}
    assert rows["tc_1 web/46/46_46.txt"]["positive"] == _words(evidence / "web/46/46_46.txt", 0, 100)
    assert rows["tc_3 web/100/100_1957043.txt"]["positive"] == _words(evidence / "web/100/100_1957043.txt", 0, 100)
    assert rows["tc_3 web/100/100_1957043.txt"]["anchor"] == "Where in England was Dame Judi Dench born?"
    assert result.reasons(DATASET) == {"answer_not_in_evidence": 1}


def test_real_excerpt_train_and_dev(upstream_samples, tmp_path):
    evidence = upstream_samples / "triviaqa" / "triviaqa-rc" / "evidence"
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET],
                       source_options={"trivia_qa": {"splits": "train,dev"}})
    rows = {r["record_id"]: r["positive"] for r in result.rows[DATASET]}
    # tc_2: Rank 4 (61_97) says "Dave Seville"; Rank 6 (10_99, 423 words) has
    # "David Seville" at word 13: its first 100 words.
    # tc_276: Hold_On_to_the_Nights.txt (141 words), "Richard Marx." at word 16.
    # tc_33: no excerpt names Sunset Boulevard.
    assert set(rows) == {"tc_1 web/46/46_46.txt", "tc_3 web/100/100_1957043.txt",
                         "tc_2 web/10/10_99.txt", "tc_276 wikipedia/Hold_On_to_the_Nights.txt"}
    assert rows["tc_2 web/10/10_99.txt"] == _words(evidence / "web/10/10_99.txt", 0, 100)
    assert rows["tc_276 wikipedia/Hold_On_to_the_Nights.txt"] == _words(
        evidence / "wikipedia/Hold_On_to_the_Nights.txt", 0, 100)
    assert result.reasons(DATASET) == {"answer_not_in_evidence": 2}


# -- bundled sample -----------------------------------------------------------------------

def test_sample_build_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET])
    entry = result.manifest["datasets"][DATASET]
    assert entry["verdict"] == "match", entry.get("problems")
    rows = {r["record_id"]: r for r in result.rows[DATASET]}
    assert set(rows) == {"sfq_101 wikipedia/Mars_(planet).txt", "sfq_102 wikipedia/Moby-Dick.txt",
                         "sfq_103 web/30/30_301.txt", "sfq_105 web/50/50_500.txt",
                         "sfq_113 web/70/70_702.txt", "sfq_114 wikipedia/The_Four_Seasons_(Vivaldi).txt"}
    moby = Path(tq.SOURCE.sample_root()) / "triviaqa/triviaqa-rc/evidence/wikipedia/Moby-Dick.txt"
    assert rows["sfq_102 wikipedia/Moby-Dick.txt"]["positive"] == _words(moby, 59, 159)
    assert rows["sfq_102 wikipedia/Moby-Dick.txt"]["source_file"] == "triviaqa/triviaqa-rc/qa/web-train.json"


def test_sample_with_dev_and_unfiltered(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET],
                       source_options={"trivia_qa": {"splits": "train,dev", "releases": "rc,unfiltered"}})
    ids = {r["record_id"].split()[0] for r in result.rows[DATASET]}
    assert ids == {"sfq_101", "sfq_102", "sfq_103", "sfq_105", "sfq_113", "sfq_114", "sfq_201", "sfq_401"}
    assert result.reasons(DATASET)["missing_evidence_file"] == 3


# -- flat layout and bad input --------------------------------------------------------------

def _qa_file(records) -> str:
    return json.dumps({"Data": records, "Domain": "Web", "Split": "train", "Version": 1.0}, indent=4)


def test_flat_layout_and_bad_files(tmp_path):
    folder = tmp_path / "in" / "triviaqa"
    (folder / "qa").mkdir(parents=True)
    (folder / "evidence" / "web" / "1").mkdir(parents=True)
    record = {"Answer": {"Aliases": ["Seine"], "NormalizedAliases": ["seine"], "Value": "Seine"},
              "EntityPages": [], "Question": "Which river flows through Paris?", "QuestionId": "q1",
              "SearchResults": [{"Filename": "1/1_1.txt", "Rank": 0}]}
    (folder / "qa" / "web-train.json").write_text(_qa_file([record]))
    (folder / "evidence" / "web" / "1" / "1_1.txt").write_text("Paris lies on the Seine.\n")
    (folder / "qa" / "wikipedia-train.json").write_bytes(b"")  # empty
    (folder / "qa" / "wikipedia-train.json.gz").write_bytes(gzip.compress(_qa_file([record]).encode())[:40])
    (folder / "qa" / "web-dev.json.bz2").write_bytes(bz2.compress(json.dumps({"Data": [record]}).encode()))
    (folder / "qa" / "web-test-without-answers.json").write_text("not read")
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET],
                       source_options={"trivia_qa": {"splits": "train,dev"}})
    assert result.pairs(DATASET) == {("Which river flows through Paris?", "Paris lies on the Seine.", None)}
    # empty file: the core's empty_file; compact (not pretty-printed) JSON: malformed_file;
    # cut gzip: unreadable_file
    assert result.reasons(DATASET) == {"empty_file": 1, "malformed_file": 1, "unreadable_file": 1}


def test_truncated_file_keeps_the_records_before_the_break(tmp_path):
    folder = tmp_path / "in" / "triviaqa" / "qa"
    folder.mkdir(parents=True)
    records = [{"Answer": {"Aliases": ["Seine"]}, "EntityPages": [], "Question": f"Question {n}?",
                "QuestionId": f"q{n}", "SearchResults": []} for n in (1, 2)]
    text = _qa_file(records)
    (folder / "web-train.json").write_text(text[:text.index('"q2"')])
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    # q1 is read (and has no evidence); the file is unreadable_file where q2 starts.
    assert result.reasons(DATASET) == {"no_evidence": 1, "unreadable_file": 1}
    unreadable = [r for r in result.rejects[DATASET] if r["reason"] == "unreadable_file"][0]
    assert unreadable["source_file"] == "triviaqa/qa/web-train.json"
    record_starts = [n for n, line in enumerate(text.splitlines(), start=1) if line == "        {"]
    assert unreadable["record_id"] == f"line {record_starts[1]}"


def test_bad_records_are_rejects():
    lines = ['{', '    "Data": [', '        {', '            "QuestionId": "q1",',
             '            "Question": "Which?"', '        },', '        {', '            "QuestionId": 5',
             '        },', '        {', '            "QuestionId": "q3" "Question": "x"', '        },',
             '        {', '            "Question": "caf\xe9"', '        }', '    ]', '}']
    data = "\n".join(lines).encode("latin-1")
    reader = tq.ReadQuestionFile({"triviaqa/qa/web-train.json": "/in/triviaqa/evidence"})
    items = list(reader(io.BytesIO(data), "triviaqa/qa/web-train.json"))
    assert [i.value["reason"] for i in items] == ["missing_answer", "malformed_record", "bad_json", "bad_encoding"]


class TestTriviaQaSample(SourceCase):
    SOURCE = "trivia_qa"
    ROWS = {"trivia_qa": 6}
