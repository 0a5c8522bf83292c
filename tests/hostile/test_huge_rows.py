"""A row of tens of MB, generated here: each reader gives a row candidate or a counted
reject for it, and reads the record after it."""
from __future__ import annotations

import json

from pipelines.sources import amazon_qa, gooaq, msmarco, paq, quora, searchqa, wikianswers, yahoo_answers
from tests.hostile.damage import HUGE_TEXT_BYTES, huge_text, outcomes, stream


def _read(reader, data: bytes, *args) -> list:
    return outcomes(reader(stream(data), "f", *args))


def test_wikianswers_huge_cluster():
    data = f"q:{huge_text()}\tq:short question\nq:a\tq:b\n".encode()
    rows = _read(wikianswers.ReadClusters(3, ""), data)  # (anchor, positive, ...) of each row
    assert len(rows) == 2 and max(len(anchor) + len(positive) for anchor, positive, *_ in rows) > HUGE_TEXT_BYTES


def test_amazon_qa_huge_answer():
    data = (f"{{'question': 'q', 'answer': '{huge_text()}'}}\n{{'question': 'q', 'answer': 'a'}}\n").encode()
    rows = _read(amazon_qa.read_category_file, data)
    assert [len(r["positive"]) for r in rows] == [HUGE_TEXT_BYTES, 1]


def test_gooaq_huge_answer():
    data = (json.dumps({"id": 1, "question": "q", "answer": huge_text()}) + "\n"
            + json.dumps({"id": 2, "question": "q", "answer": "a"}) + "\n").encode()
    assert [row["id"] for row in _read(gooaq.read_data_file, data)] == [1, 2]


def test_quora_huge_question_is_a_counted_reject_and_reading_goes_on():
    data = ("\t".join(quora.HEADER) + f"\n1\t1\t2\t{huge_text()}\tq\t1\n2\t3\t4\tq\tr\t0\n").encode()
    got = _read(quora.read_pairs, data)
    assert got[0] == ("reject", "bad_csv") and [pair["id"] for pair in got[1:]] == [2]


def test_yahoo_huge_answer_is_a_counted_reject():
    data = f'"1","t","c","{huge_text()}"\n"2","t","c","a"\n'.encode()
    got = _read(yahoo_answers.read_csv, data, yahoo_answers.TITLE_ANSWER)
    _title, _content, answer, _source_file, _record_id = got[1]
    assert got[0] == ("reject", "malformed_row") and answer == "a"


def test_msmarco_huge_passage():
    data = f"1\t{huge_text()}\n2\tshort\n".encode()
    assert [pid for pid, _text in _read(msmarco.parse.read_collection, data)] == [1, 2]


def test_paq_huge_passage_is_a_counted_reject():
    data = f'1\t"{huge_text()}"\ttitle\n2\tshort\ttitle\n'.encode()
    got = _read(paq.parse.read_passages, data)
    key, passage_id, _text, _line = got[1]
    assert got[0] == ("reject", "malformed_passage") and passage_id == "2"


def test_searchqa_clue_beyond_its_size_cap_is_a_counted_reject():
    data = json.dumps({"id": 1, "question": "q", "search_results": [{"snippet": huge_text()}]}).encode()
    assert _read(searchqa.read_clue, data, 5) == [("reject", "malformed_record")]
