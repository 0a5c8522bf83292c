"""Property-based tests of every line and record parser: any input gives a parse result or
a clean reject / ``ValueError``, never another exception; round trips where the format
allows one."""
from __future__ import annotations

import csv
import io
import json

from hypothesis import given, settings, strategies as st

from pipelines.sources import (amazon_qa, eli5, gooaq, msmarco, natural_questions, paq, quora,
                               searchqa, squad, trivia_qa, wikianswers, yahoo_answers)
from pipelines.corpus.normalize import normalize_text
from pipelines.engine.formats import tsv_tables
from tests.hostile.damage import outcomes, stream

# Values of any JSON type, nested a little: the shapes hostile records take.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)
plain_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\t\r\n"),
                     min_size=1, max_size=20)


def _records(reader, data: bytes, *args) -> list:
    """Everything a ``read_file`` generator yields for ``data``; it must not raise."""
    return outcomes(reader(stream(data), "f", *args))


# -- wikianswers -------------------------------------------------------------------------

@given(st.text())
def test_parse_cluster_takes_any_line(line):
    questions, answers, malformed = wikianswers.parse_cluster(line)
    assert all(isinstance(q, str) and q.strip() for q in questions + answers)
    assert all(isinstance(n, int) and item.strip() for n, item in malformed)


@given(st.lists(plain_text.filter(str.strip), min_size=1, max_size=6))
def test_parse_cluster_round_trip(questions):
    line = "\t".join("q:" + q for q in questions)
    assert wikianswers.parse_cluster(line) == (questions, [], [])


# -- msmarco -----------------------------------------------------------------------------

@given(st.text())
def test_parse_int_gives_an_int_or_none(value):
    parsed = msmarco.parse.parse_int(value)
    assert parsed is None or isinstance(parsed, int)


@given(st.integers())
def test_parse_int_round_trip(number):
    assert msmarco.parse.parse_int(str(number)) == number


@given(st.binary(max_size=200))
def test_msmarco_tsv_readers_take_any_bytes(data):
    for reader in (msmarco.parse.read_collection, msmarco.parse.read_queries, msmarco.parse.read_qrels,
                   msmarco.parse.read_id_triples, msmarco.parse.read_text_triples, msmarco.parse.read_hard_negatives):
        _records(reader, data)


@given(st.lists(st.tuples(st.integers(0, 10**9), plain_text), max_size=5))
def test_read_queries_round_trip(rows):
    data = "".join(f"{qid}\t{text}\n" for qid, text in rows).encode()
    expected = [(qid, normalize_text(text)) for qid, text in rows]
    assert _records(msmarco.parse.read_queries, data) == expected


# Lines a TSV file may hold: ids, texts, the odd damaged field, TABs and line endings.
tsv_fields = st.one_of(st.integers(-5, 10**20).map(str), plain_text, st.sampled_from(
    ["", " 7", "0x1", "+3", "1e3", "٣", "\xff"]))
tsv_lines = st.lists(st.lists(tsv_fields, min_size=1, max_size=4).map("\t".join), max_size=30)


@settings(max_examples=200)
@given(tsv_lines, st.sampled_from(["\n", "\r\n"]), st.integers(1, 64))
def test_tsv_tables_parse_blocks_like_lines(lines, ending, block_bytes):
    """pyarrow's parse of a clean block and the line-by-line parse agree on every input:
    same rows, same rejects with the same line numbers."""
    data = ending.join(lines).encode("utf-8", "surrogatepass") + ending.encode()
    def read(vectorised):
        items = tsv_tables(io.BytesIO(data), "d", "f", ("id", "x", "text"), ids=("id", "x"),
                           block_bytes=block_bytes, vectorised=vectorised)
        return [(item.value["reason"], item.value["record_id"]) if getattr(item, "tag", None)
                else item.to_pylist() for item in items]
    fast, slow = read(True), read(False)
    assert _flatten(fast) == _flatten(slow)


def _flatten(items):
    rows, rejects = [], []
    for item in items:
        (rows.extend if isinstance(item, list) else rejects.append)(item)
    return rows, rejects


@given(st.dictionaries(st.sampled_from(["qid", "pos", "neg", "x"]), json_values))
def test_hard_negative_problem_takes_any_object(record):
    problem = msmarco.parse.hard_negative_problem(record)
    assert problem is None or problem[0] in ("malformed_record", "no_positive")


@given(st.text())
def test_repair_mojibake_takes_any_text(text):
    assert isinstance(msmarco.parse.repair_mojibake(text), str)


@given(plain_text)
def test_repair_mojibake_round_trip(text):
    damaged = text.encode("utf-8").decode("latin-1")
    assert msmarco.parse.repair_mojibake(damaged) == text


# -- paq ---------------------------------------------------------------------------------

@given(st.text())
def test_parse_passage_line_takes_any_line(line):
    parsed, problem = paq.parse.parse_passage_line(line, {"id": 0, "text": 1, "title": 2})
    assert (parsed is None) == bool(problem)


@given(st.integers(0, 10**12), plain_text, plain_text)
def test_parse_passage_line_round_trip(pid, text, title):
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="").writerow([pid, text, title])
    assert paq.parse.parse_passage_line(buffer.getvalue(), {"id": 0, "text": 1, "title": 2}) == (
        (str(pid), text), "")


@given(json_values)
def test_canonical_passage_id_takes_any_value(value):
    parsed = paq.parse.canonical_passage_id(value)
    assert parsed is None or parsed.isdigit()


@given(st.dictionaries(st.sampled_from(["question", "answers", "answer", "x"]), json_values))
def test_paq_record_shapes_take_any_object(record):
    parsed, reason, _detail = paq.parse.parse_metadata_line(record)
    assert (parsed is None) == bool(reason)
    question, problem = paq.parse.parse_filtered_line(record)
    assert (question is None) == bool(problem)


@given(st.binary(max_size=200))
def test_paq_readers_take_any_bytes(data):
    for reader in (paq.parse.read_filtered, paq.parse.read_metadata, paq.parse.read_passages):
        _records(reader, data)


# -- quora -------------------------------------------------------------------------------

@given(st.lists(st.text(max_size=10), max_size=8))
def test_parse_pair_takes_any_fields(fields):
    pair, reason, _detail = quora.parse_pair(fields)
    assert (pair is None) == (reason is not None)


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(0, 10**6), plain_text.filter(str.strip),
       plain_text.filter(str.strip), st.booleans())
def test_quora_file_round_trip(pair_id, qid1, qid2, question1, question2, duplicate):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(quora.HEADER)
    writer.writerow([pair_id, qid1, qid2, question1, question2, int(duplicate)])
    got = _records(quora.read_pairs, buffer.getvalue().encode())
    if qid1 == qid2:
        assert got == [("reject", "same_question")]
    else:
        assert [{k: v for k, v in p.items() if k != "source_file"} for p in got] == [{
            "id": pair_id, "qid1": qid1, "qid2": qid2, "question1": question1.strip(),
            "question2": question2.strip(), "duplicate": duplicate}]


@given(st.binary(max_size=300))
def test_quora_reader_takes_any_bytes(data):
    _records(quora.read_pairs, b"\t".join(h.encode() for h in quora.HEADER) + b"\n" + data)


# -- squad / trivia_qa / natural_questions / eli5 / gooaq / searchqa: record shapes ---------

@given(json_values)
def test_squad_question_problem_takes_any_value(qa):
    reason, _detail = squad.question_problem(qa)
    assert reason in (None, "malformed_question", "unanswerable", "no_answer")


@given(st.dictionaries(st.sampled_from(["QuestionId", "Question", "Answer", "EntityPages",
                                        "SearchResults"]), json_values))
def test_trivia_qa_parse_record_takes_any_object(record):
    question, reason, _detail = trivia_qa.parse.parse_record(record, "train")
    assert (question is None) == (reason is not None)


@given(st.binary(max_size=300))
def test_trivia_qa_record_texts_take_any_bytes(data):
    try:
        list(trivia_qa.parse.iter_record_texts(stream(data)))
    except EOFError:
        pass  # a record left open: ReadFiles records the file as unreadable_file


@given(st.dictionaries(st.sampled_from(["example_id", "question_text", "document_text",
                                        "document_tokens", "annotations"]), json_values))
def test_natural_questions_example_outcome_takes_any_object(example):
    kind, value = natural_questions.example_outcome(example, "f")
    assert kind in ("row", "reject")


@given(st.dictionaries(st.sampled_from(["q_id", "title", "answers", "id", "input", "output",
                                        "subreddit"]), json_values))
def test_eli5_question_from_record_raises_only_value_error(record):
    try:
        question = eli5.question_from_record(record)
    except ValueError:
        return
    eli5.evaluate_question({**question, "source_file": "f"},
                           {"min_relative_score": 0.5, "max_answers": 2, "url_tokens": "drop"})


@given(st.dictionaries(st.sampled_from(["id", "question", "answer", "answer_type"]), json_values))
def test_gooaq_record_problem_takes_any_object(record):
    problem = gooaq.record_problem(record)
    assert problem is None or problem[0] in ("bad_id", "bad_field")


@given(st.text())
def test_gooaq_parse_collection_raises_only_value_error(text):
    try:
        items = gooaq.parse_collection(text)
    except ValueError:
        return
    assert all(isinstance(item, str) for item in items)


@given(st.lists(plain_text.filter(str.strip), max_size=5))
def test_gooaq_parse_collection_round_trip(items):
    assert gooaq.parse_collection(repr(items)) == [item.strip() for item in items]


@given(json_values)
def test_gooaq_split_entry_id_takes_any_value(entry):
    entry_id = gooaq.split_entry_id(entry)
    assert entry_id is None or isinstance(entry_id, int)


@given(st.binary(max_size=300))
def test_searchqa_parse_clue_takes_any_bytes(data):
    result = searchqa.parse_clue(data, "train/000001-x.json", 5)
    assert isinstance(result, dict) or getattr(result, "tag", None) == "rejected"


@given(st.integers(0, 10**9), plain_text, st.lists(st.none() | plain_text, max_size=8))
def test_searchqa_parse_clue_round_trip(clue_id, question, snippets):
    data = json.dumps({"id": clue_id, "question": question,
                       "search_results": [{"snippet": s} for s in snippets]}).encode()
    clue = searchqa.parse_clue(data, "train/x.json", 5)
    assert clue["id"] == str(clue_id) and clue["split"] == "train"


# -- amazon_qa -----------------------------------------------------------------------------

@given(st.text())
def test_amazon_parse_record_raises_only_value_error(text):
    try:
        amazon_qa.parse_record(text)
    except ValueError:
        pass


@given(json_values)
def test_amazon_parse_record_round_trip_and_record_pairs_take_any_value(value):
    assert amazon_qa.parse_record(repr(value)) == value
    if isinstance(value, dict) and value:  # a line starting with '{"' is read as JSON first
        assert amazon_qa.parse_record(json.dumps(value)) == value
    list(amazon_qa.record_pairs(value, "f", "line 1"))


# -- yahoo_answers ---------------------------------------------------------------------------

@given(st.text())
def test_yahoo_record_parsers_raise_only_csv_or_value_errors(record):
    try:
        yahoo_answers.qa_from_fields(yahoo_answers.parse_fields(record))
    except (csv.Error, ValueError):
        pass


@given(st.integers(1, 10), plain_text, plain_text, plain_text)
def test_yahoo_record_round_trip(class_index, title, content, answer):
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="").writerow(
        [class_index, title, content, answer])
    assert yahoo_answers.parse_fields(buffer.getvalue()) == [str(class_index), title, content, answer]


@settings(max_examples=50)
@given(st.binary(max_size=400))
def test_yahoo_csv_reader_takes_any_bytes(data):
    _records(yahoo_answers.read_csv, data, "yahoo_answers_title_answer")
