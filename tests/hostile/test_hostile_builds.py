"""One build per source over a folder of damaged and hostile files: every file ends in rows
or counted rejects naming it, nothing is executed, and both conservation equations hold."""
from __future__ import annotations

import gzip
import json

import pytest

from tests.helpers import run_build
from tests.hostile.damage import BOM, latin1, not_gzip, stray_bytes, truncated_gzip
from tests.sources.conservation import assert_conserved


def _write(root, files: dict) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _jsonl(*records) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def _accounted_files(result, dataset) -> set:
    named = {r["source_file"] for r in result.rejects.get(dataset, [])}
    named |= {r["source_file"] for r in result.rows.get(dataset, [])}
    return named


def _build(tmp_path, folder, files, datasets, support=None, **kwargs):
    """Build ``datasets`` from ``files`` (the hostile ones, each of which must end in rows or
    rejects naming it) and ``support`` (sound companion files such as a split list)."""
    _write(tmp_path / "in" / folder, {**files, **(support or {})})
    result = run_build(tmp_path / "out", input_root=tmp_path / "in", datasets=datasets, **kwargs)
    assert_conserved(result)
    for dataset in datasets:
        named = _accounted_files(result, dataset)
        for name in files:
            assert any(f"{folder}/{name}" in source for source in named), (name, named)
    return result


def test_amazon_qa(tmp_path):
    pwned = tmp_path / "PWNED"
    good = b"{'question': 'Does it fit?', 'answer': 'Yes, it does.'}\n"
    result = _build(tmp_path, "amazon_qa", {
        "qa_Latin.json": latin1("{'question': 'Caf\u00e9 ok?', 'answer': 'Oui'}\n"),
        "QA_Fake.json.gz": not_gzip(),
        "qa_Cut.json.gz": truncated_gzip(good * 500),
        "qa_Bom.json": BOM + good,
        "qa_Empty.json": b"",
        "qa_Call.json": f"{{'question': __import__('os').system('touch {pwned}'), 'answer': 'x'}}\n"
                        .encode() + b"{'question': 7, 'answer': 'x'}\n{'questions': 'none'}\n",
    }, ["amazon_qa"])
    reasons = result.reasons("amazon_qa")
    assert not pwned.exists()
    assert {"bad_encoding", "bad_literal", "unreadable_file", "empty_file", "bad_field"} <= set(reasons)


def test_gooaq(tmp_path):
    row = {"id": 1, "question": "why?", "answer": "because", "answer_type": "feat_snip"}
    split = json.dumps({"train": [[1, 0.5], [2, 0.1], [3, 0.2]], "dev": [], "test": []}).encode()
    result = _build(tmp_path, "gooaq", {
        "a/gooaq.jsonl.gz": not_gzip(),
        "b/gooaq.jsonl": BOM + _jsonl(row) + latin1('{"id": 2, "question": "caf\u00e9"}\n'),
        "c/gooaq.jsonl.gz": truncated_gzip(_jsonl({**row, "id": 3}) * 300),
        "d/gooaq.jsonl": b"",
        "e/gooaq.jsonl": _jsonl({"id": "4", "question": 1}, {"id": 5, "question": "q", "answer": 5},
                                {"id": 6, "question": "q", "answer": "a", "extra": [1, 2]}),
    }, ["gooaq"], support={"split.json": split})
    assert {"bad_json", "bad_encoding", "unreadable_file", "empty_file", "bad_id", "bad_field"} <= set(
        result.reasons("gooaq"))


def test_quora(tmp_path):
    header = "\t".join(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]) + "\n"
    good = header + "1\t1\t2\tHow old is the sun?\tWhat is the age of the sun?\t1\n"
    result = _build(tmp_path, "quora", {
        "a/quora_duplicate_questions.tsv": latin1(header + "2\t3\t4\tCaf\u00e9?\tCoffee?\t0\n"),
        "b/quora_duplicate_questions.tsv.gz": not_gzip(),
        "c/quora_duplicate_questions.tsv.gz": truncated_gzip(good.encode() * 200),
        "d/quora_duplicate_questions.tsv": b"",
        "e/quora_duplicate_questions.tsv": BOM + (good + '5\t9\t8\t"never closed\tq\t1\n').encode(),
        "f/quora_duplicate_questions.tsv": (header + "6\t1\t2\tq\tq\t1\textra\n7\tx\t2\tq\tq\t1\n").encode(),
    }, ["quora_triplets"])
    assert {"bad_encoding", "malformed_file", "unreadable_file", "empty_file", "wrong_field_count",
            "bad_id"} <= set(result.reasons("quora_triplets"))


def test_eli5(tmp_path):
    record = {"q_id": "a1", "title": "Why is the sky blue?", "subreddit": "explainlikeimfive",
              "answers": {"a_id": ["x"], "text": ["Light scatters."], "score": [5]}}
    result = _build(tmp_path, "eli5", {
        "latin.jsonl": latin1('{"q_id": "b", "title": "caf\u00e9"}\n'),
        "fake.json.gz": not_gzip(),
        "cut.jsonl.gz": truncated_gzip(_jsonl(*({**record, "q_id": f"c{i}"} for i in range(200)))),
        "bom.jsonl": BOM + _jsonl(record),
        "empty.json": b"",
        "cut_array.json": json.dumps([record] * 3).encode()[:-40],
        "types.jsonl": _jsonl({**record, "q_id": "t", "answers": {"text": "x"}}, {"q_id": 5, "title": 6}),
    }, ["eli5"])
    assert {"bad_encoding", "malformed_file", "unreadable_file", "empty_file", "malformed_record"} <= set(
        result.reasons("eli5"))


def test_searchqa(tmp_path):
    clue = {"id": 1, "question": "This planet is red", "search_results": [{"snippet": "Mars is red"}]}
    result = _build(tmp_path, "searchqa", {
        "data_json/train/000001-a.json": latin1('{"id": 2, "question": "caf\u00e9"}'),
        "data_json/train/000003-b.json.gz": not_gzip(),
        "data_json/train/000004-c.json.gz": truncated_gzip(json.dumps(clue).encode() * 50),
        "data_json/train/000005-d.json": BOM + json.dumps({**clue, "id": 5}).encode(),
        "data_json/train/000006-e.json": b"",
        "data_json/train/000007-f.json": json.dumps({"id": 7, "question": 1, "search_results": {}}).encode(),
        "data_json/train.zip": b"PK\x03\x04" + stray_bytes() * 10,
    }, ["searchqa"])
    assert {"bad_encoding", "bad_json", "unreadable_file", "empty_file", "malformed_record"} <= set(
        result.reasons("searchqa"))


def test_natural_questions(tmp_path):
    example = {"example_id": 1, "question_text": "who?", "document_text": "<P> He did </P>",
               "annotations": [{"long_answer": {"start_token": 0, "end_token": 4}}]}
    result = _build(tmp_path, "natural_questions", {
        "simplified-nq-train.jsonl.gz": not_gzip(),
        "nq-train-00.jsonl.gz": truncated_gzip(_jsonl(*({**example, "example_id": i} for i in range(300)))),
        "nq-train-01.jsonl": latin1('{"example_id": 9, "question_text": "caf\u00e9"}\n'),
        "nq-train-02.jsonl": b"",
        # Ids apart from the truncated file's, all of whose readable examples are kept.
        "nq-train-03.jsonl": BOM + _jsonl({**example, "example_id": 1007},
                                          {**example, "example_id": 1008, "annotations": "none"}),
    }, ["natural_questions"])
    assert {"bad_json", "unreadable_file", "bad_encoding", "empty_file", "malformed_example"} <= set(
        result.reasons("natural_questions"))


def test_squad(tmp_path):
    document = {"data": [{"paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France"}]},
        {"id": 5, "question": ["x"], "answers": "none"}]}]}]}
    result = _build(tmp_path, "squad_v2", {
        "a/train-v2.0.json.gz": not_gzip(),
        "b/train-v2.0.json": latin1(json.dumps({"data": [{"title": "Caf\u00e9"}]}, ensure_ascii=False)),
        "c/train-v2.0.json.gz": truncated_gzip(json.dumps(document).encode() * 20),
        "d/train-v2.0.json": BOM + json.dumps(document).encode(),
        "e/train-v2.0.json": b"",
    }, ["squad"], source_options={"squad": {"version": "v2.0"}})
    assert {"unreadable_file", "empty_file", "malformed_question"} <= set(result.reasons("squad"))


def test_wikianswers(tmp_path):
    cluster = "q:How old is the sun?\tq:What is the age of the sun?\ta:4.6 billion years\n"
    result = _build(tmp_path, "wikianswers", {
        "latin.txt": latin1("q:Caf\u00e9?\tq:Coffee?\n"),
        "fake.json.gz": not_gzip(),
        "cut.gz": truncated_gzip(cluster.encode() * 500),
        "bom.txt": BOM + cluster.encode(),
        "empty.txt": b"",
        "stray.txt": b"q:one\t" + stray_bytes() + b"\tq:two\n",
    }, ["wikianswers"])
    assert {"bad_encoding", "malformed_item", "unreadable_file", "empty_file"} <= set(
        result.reasons("wikianswers"))


def test_yahoo_answers(tmp_path):
    good = '"1","How old is the sun?","Just wondering","About 4.6 billion years."\n'
    result = _build(tmp_path, "yahoo_answers", {
        "a/train.csv": latin1('"2","Caf\u00e9?","x","y"\n'),
        "b/train.csv.gz": truncated_gzip(good.encode() * 400),
        "c/train.csv": BOM + (good + '"3","open quote,"x","y"\n"11","t","c","a"\n"1","t","c"\n').encode(),
        "d/train.csv": b"",
        "yahoo_answers_csv.tgz": not_gzip(),
    }, ["yahoo_answers_title_answer"])
    assert {"bad_encoding", "unreadable_file", "malformed_row", "empty_file"} <= set(
        result.reasons("yahoo_answers_title_answer"))


@pytest.mark.parametrize("negatives", ["hard_negatives", "qidpidtriples"])
def test_msmarco(tmp_path, negatives):
    files = {
        "collection.tsv": BOM + b"1\tA passage about the sun.\n2\tAnother passage.\n" + latin1("3\tCaf\u00e9\n"),
        "queries.train.tsv": b"10\thow old is the sun\nnot-an-id\tquery\n",
        "qrels.train.tsv.gz": truncated_gzip(b"10 0 1 1\n" * 500),
    }
    if negatives == "hard_negatives":
        files["msmarco-hard-negatives.jsonl.gz"] = not_gzip() + _jsonl(
            {"qid": 10, "pos": [1], "neg": {"bm25": [2, 3]}}, {"qid": "10", "pos": [1], "neg": {}})
    else:
        files["qidpidtriples.train.full.2.tsv.gz"] = gzip.compress(b"10\t1\t2\n10\t1\tx\n10\t1\n")
    result = _build(tmp_path, "msmarco", files, ["msmarco_triplets"],
                    source_options={"msmarco": {"negatives": negatives}})
    assert {"bad_encoding", "malformed_line", "unreadable_file"} <= set(result.reasons("msmarco_triplets"))


def test_paq(tmp_path):
    metadata = {"question": "who wrote it", "answers": [{"passage_id": 1}]}
    result = _build(tmp_path, "paq", {
        "PAQ/PAQ.filtered.jsonl": BOM + _jsonl({"question": "who wrote it", "answer": ["x"]},
                                               {"question": 5, "answer": "x"})
                                  + latin1('{"question": "caf\u00e9", "answer": []}\n'),
        "PAQ.metadata.jsonl.gz": truncated_gzip(_jsonl(metadata) * 400),
        "psgs_w100.tsv": b'id\ttext\ttitle\n1\t"A passage\ttitle\n2\t"ok ""quoted"" text"\tT\n',
    }, ["paq"])
    assert {"bad_encoding", "malformed_question", "unreadable_file", "malformed_passage"} <= set(
        result.reasons("paq"))


def test_trivia_qa(tmp_path):
    def record(qid, question, tail=b""):
        body = json.dumps({"QuestionId": qid, "Question": question, "Answer": {"Value": "x"},
                           "EntityPages": [], "SearchResults": []}, indent=4, ensure_ascii=False).encode()
        return b"        " + body.replace(b"\n", b"\n        ") + tail

    head, tail = b'{\n    "Data": [\n', b'\n    ]\n}\n'
    result = _build(tmp_path, "triviaqa", {
        "triviaqa-rc/qa/web-train.json": head + record("q1", "caf\u00e9").replace(
            "caf\u00e9".encode(), latin1("caf\u00e9")) + tail,
        "triviaqa-rc/qa/wikipedia-train.json.gz": truncated_gzip(head + record("q2", "Why?", b",\n") * 200),
        "triviaqa-rc/qa/web-dev.json": b"",
    }, ["trivia_qa"], source_options={"trivia_qa": {"splits": "train,dev"}})
    assert {"bad_encoding", "unreadable_file", "empty_file"} <= set(result.reasons("trivia_qa"))
