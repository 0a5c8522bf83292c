"""PAQ: rule functions, the filtered-line parser on real NQ-open lines, the bundled
sample, options, and bad input."""
import csv
import gzip
import io
import json
import re
import tarfile

import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from pipelines.engine.join import text_key
from pipelines.sources import paq
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

RIDEAU = ("when was the rideau canal opened",
          "The Rideau Canal connects Ottawa to Kingston on Lake Ontario. It was opened in 1832 as a "
          "precaution in case of war with the United States, and in winter a part of it in Ottawa "
          "becomes the \"world's largest skating rink\".", None)


# -- rule and parse functions ----------------------------------------------------------

def test_canonical_passage_id():
    assert paq.parse.canonical_passage_id(7) == "7"
    assert paq.parse.canonical_passage_id("007") == "7"
    assert paq.parse.canonical_passage_id(" 21015324 ") == "21015324"
    for bad in (None, True, -3, 1.0, "wiki-12", "", "١٢"):
        assert paq.parse.canonical_passage_id(bad) is None


def _canonical_by_pattern(value):
    """The rule stated another way: a non-negative int, or ASCII digits with white space
    around them, as those digits without leading zeros."""
    if type(value) is int:
        return str(value) if value >= 0 else None
    match = re.fullmatch(r"\s*([0-9]+)\s*", value) if isinstance(value, str) else None
    return (match.group(1).lstrip("0") or "0") if match else None


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.integers(), st.text(alphabet=" \t\n\u00a00123456789-+x١²", max_size=8),
                 st.text(max_size=6), st.none(), st.booleans(), st.floats()))
def test_canonical_passage_id_follows_the_rule_for_any_value(value):
    assert paq.parse.canonical_passage_id(value) == _canonical_by_pattern(value)


def test_choose_passages_first_and_all():
    ids = ["102", "102", "104", "11"]
    assert paq.rules.choose_passages(ids, "first") == ["102"]
    assert paq.rules.choose_passages(ids, "all") == ["11", "102", "104"]


def test_question_is_candidate():
    assert paq.rules.question_is_candidate(True, True)
    assert not paq.rules.question_is_candidate(False, True)
    assert paq.rules.question_is_candidate(False, False)


def test_parse_metadata_line():
    parsed, reason, _ = paq.parse.parse_metadata_line(
        {"question": "q", "answers": [{"passage_id": "5"}, {"passage_id": 3}]})
    assert parsed == {"question": "q", "passage_ids": ["5", "3"]} and reason == ""
    assert paq.parse.parse_metadata_line({"answers": []})[1] == "malformed_question"
    assert paq.parse.parse_metadata_line({"question": "q", "answers": []})[1] == "no_passage"
    assert paq.parse.parse_metadata_line({"question": "q"})[1] == "no_passage"
    assert paq.parse.parse_metadata_line({"question": "q", "answers": ["5"]})[1] == "bad_passage_id"
    assert paq.parse.parse_metadata_line({"question": "q", "answers": [{"passage_id": 1.5}]})[1] == "bad_passage_id"


def test_parse_passage_line_uses_csv_quoting():
    columns = {"id": 0, "text": 1, "title": 2}
    line = '1\t"Aaron ( or ; ""Ahärôn"") is a prophet"\tAaron'
    assert paq.parse.parse_passage_line(line, columns) == (("1", 'Aaron ( or ; "Ahärôn") is a prophet'), "")
    assert paq.parse.parse_passage_line("2\t\"never closed\tT", columns)[0] is None
    assert paq.parse.parse_passage_line("3\tno title", columns)[0] is None
    assert paq.parse.parse_passage_line("x\ttext\ttitle", columns)[0] is None


def test_passage_header_gives_column_order():
    assert paq.parse.passage_header(["id", "text", "title"]) == {"id": 0, "text": 1, "title": 2}
    # PAQ's README lists the title before the text.
    assert paq.parse.passage_header(["id", "title", "text"]) == {"id": 0, "text": 2, "title": 1}
    assert paq.parse.passage_header(["1", "text", "title"]) is None


def test_find_inputs_prefers_unpacked_and_reports_copies():
    found = paq.find_inputs(["r/paq/PAQ.tar.gz", "r/paq/PAQ/PAQ.filtered.jsonl",
                             "r/paq/PAQ.metadata.jsonl.gz", "r/paq/psgs_w100.tsv.gz",
                             "r/paq/psgs_w100.tsv", "r/paq/PAQ_L1.tar.gz",
                             "r/paq/PAQ.unfiltered_metadata.jsonl.gz", "r/paq/PAQ/LICENSE"])
    assert (found.questions, found.questions_kind) == ("r/paq/PAQ/PAQ.filtered.jsonl", paq.FILTERED)
    assert found.metadata == "r/paq/PAQ.metadata.jsonl.gz"
    assert found.passages == "r/paq/psgs_w100.tsv"
    assert sorted(found.duplicates) == [("r/paq/PAQ.tar.gz", "r/paq/PAQ/PAQ.filtered.jsonl"),
                                        ("r/paq/psgs_w100.tsv.gz", "r/paq/psgs_w100.tsv")]


def test_question_passage_pair_keeps_question_as_generated():
    row = paq.rules.question_passage_pair(
        {"question": "who wrote hamlet", "source_file": "paq/m.jsonl", "line": 4}, "12", "Hamlet is ...")
    assert (row["anchor"], row["positive"], row["record_id"]) == (
        "who wrote hamlet", "Hamlet is ...", "line 4, passage 12")


# -- real excerpts: PAQ uses the NQ-open line format ------------------------------------

def test_filtered_parser_reads_real_nq_open_lines(upstream_samples):
    folder = upstream_samples / "natural_questions" / "nq_open"
    questions = []
    for name in ("NQ-open.train.jsonl", "NQ-open.dev.jsonl", "NQ-open.efficientqa.dev.1.1.sample.jsonl"):
        with open(folder / name, "rb") as stream:
            items = list(paq.parse.read_filtered(stream, name))
        assert all(isinstance(item, pa.Table) for item in items), name  # no rejects
        for table in items:
            assert table.schema == paq.LISTED
            assert table["key"].to_pylist() == [text_key(q) for q in table["question"].to_pylist()]
            questions += table["question"].to_pylist()
    assert questions[:2] == ["where did they film hot tub time machine",
                             "who has the right of way in international waters"]
    # kept exactly as released: lower case, no question mark
    assert "who governs in america\u2019s representative democracy (republic) system" in questions
    assert all(not q.endswith("?") for q in questions)


# -- builds -----------------------------------------------------------------------------

def test_sample_build_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=["paq"])
    entry = result.manifest["datasets"]["paq"]
    assert entry["verdict"] == "match", entry.get("problems")
    pairs = result.pairs("paq")
    assert RIDEAU in pairs
    assert {anchor for anchor, _p, _n in pairs} == {
        "when was the rideau canal opened", "what is the deepest lake in the world",
        "who was the first woman to win a nobel prize", "when was the treaty of tordesillas signed",
        "which river does the humber bridge cross"}
    assert sorted(i["path"] for i in result.manifest["inputs"]) == [
        "paq/PAQ.metadata.jsonl.gz", "paq/PAQ.tar.gz", "paq/psgs_w100.tsv.gz"]


def test_sample_build_with_options(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=["paq"],
                       source_options={"paq": {"passages": "all", "filtered_only": "false"}})
    anchors = sorted(anchor for anchor, _p, _n in result.pairs("paq"))
    assert anchors.count("what is the deepest lake in the world") == 2
    assert "what connects ottawa to kingston" in anchors
    assert len(result.rows["paq"]) == 7
    assert result.reasons("paq") == {
        "bad_encoding": 1, "bad_json": 1, "bad_passage_id": 1, "duplicate_passage_id": 1,
        "malformed_passage": 3, "malformed_question": 1, "no_passage": 1, "passage_missing": 1}
    # The list is not read; the passages named are those of the defaults (and 104 again).
    assert result.manifest["input_rows"] == {"paq": {
        "psgs_w100.tsv": _passage_rows_by_hand(_sample_member("psgs_w100.tsv"), _named_passages(result))}}
    assert result.manifest["input_rows"]["paq"]["psgs_w100.tsv"] == {"taken": 10, "skipped": {"not_used": 1}}


# -- input rows of the lookup tables ----------------------------------------------------

def _sample_member(name: str) -> bytes:
    sample = f"{paq.SOURCE.sample_root()}/paq"
    if name == "psgs_w100.tsv":
        with gzip.open(f"{sample}/psgs_w100.tsv.gz") as stream:
            return stream.read()
    with tarfile.open(f"{sample}/PAQ.tar.gz") as tar:
        return tar.extractfile(f"PAQ/{name}").read()


def _named_passages(result) -> set:
    """The passage ids named by the questions that reached the passage join: those of the
    rows and of the ``passage_missing`` rejects (record id ``line N, passage P``)."""
    record_ids = [r["record_id"] for r in result.rows["paq"]] + [
        r["record_id"] for r in result.rejects["paq"] if r["reason"] == "passage_missing"]
    return {re.fullmatch(r"line \d+, passage (\d+)", record_id).group(1) for record_id in record_ids}


def _passage_rows_by_hand(tsv: bytes, named: set) -> dict:
    """The input rows of psgs_w100.tsv, worked out from its lines (the header is no row):
    the first line of an id is taken when a question names the id, else ``not_used``; a
    line repeating an id (``duplicate_passage_id``) and a line rejected where it is read
    (not UTF-8, bad quoting, not 3 fields, an id that is no integer) are taken, as records."""
    taken, not_used, seen = 0, 0, set()
    for number, line in enumerate(tsv.splitlines(), 1):
        if (number == 1 and line.startswith(b"id\t")) or not line.strip():
            continue
        try:
            fields = next(csv.reader([line.decode("utf-8")], delimiter="\t", strict=True))
        except (UnicodeDecodeError, csv.Error):
            fields = []
        if len(fields) != 3 or not fields[0].isdigit() or fields[0] in seen:
            taken += 1
            continue
        seen.add(fields[0])
        if fields[0] in named:
            taken += 1
        else:
            not_used += 1
    return {"taken": taken, "skipped": {"not_used": not_used} if not_used else {}}


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _tar_gz(members: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_bad_input_ends_in_counted_rejects(tmp_path):
    folder = tmp_path / "in" / "paq"
    folder.mkdir(parents=True)
    # An archive without the filtered list.
    (folder / "PAQ.tar.gz").write_bytes(_tar_gz({"PAQ/LICENSE": b"CC BY-SA 3.0\n"}))
    # The unpacked list next to it is read instead; it holds every kind of bad line.
    (folder / "PAQ").mkdir()
    (folder / "PAQ" / "PAQ.filtered.jsonl").write_bytes(b"\n".join([
        json.dumps({"question": "who wrote hamlet", "answer": ["Shakespeare"]}).encode(),
        json.dumps({"question": "who wrote hamlet", "answer": "Shakespeare"}).encode(),
        json.dumps(["who wrote hamlet"]).encode(),
        b'{"question": "caf\xe9", "answer": []}',
        b"",
        b"not json",
    ]) + b"\n")
    # Named .gz but not gzip: read as the plain text it is (compression is sniffed).
    (folder / "PAQ.metadata.jsonl.gz").write_bytes(
        json.dumps({"question": "who wrote hamlet", "answers": [{"passage_id": "1"}]}).encode() + b"\n")
    # Named .gz, starts like gzip, then breaks off: the file is unreadable after its header.
    (folder / "psgs_w100.tsv.gz").write_bytes(_gzip(b"id\ttext\ttitle\n1\tHamlet is a tragedy.\tHamlet\n")[:30])
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=["paq"])
    assert result.rows["paq"] == []
    assert result.reasons("paq") == {
        "bad_encoding": 1, "bad_json": 1, "duplicate_input": 1, "malformed_question": 1,
        "not_an_object": 1, "passage_missing": 1, "unreadable_file": 1}


def test_missing_file_and_archive_without_list_are_reported(tmp_path):
    folder = tmp_path / "in" / "paq"
    folder.mkdir(parents=True)
    (folder / "psgs_w100.tsv").write_bytes(b"")  # not read while a required file is missing
    (folder / "PAQ.metadata.jsonl").write_bytes(b"")
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=["paq"])
    assert result.rows["paq"] == []
    assert result.reasons("paq") == {"missing_file": 1}
    (folder / "PAQ.tar.gz").write_bytes(_tar_gz({"PAQ/LICENSE": b"CC BY-SA 3.0\n"}))
    result = run_conserved_build(tmp_path / "out2", input_root=tmp_path / "in", datasets=["paq"])
    assert result.rows["paq"] == []
    assert result.reasons("paq") == {"empty_file": 2, "no_member": 1}


def test_bad_option_values_are_one_readable_line(tmp_path, capsys):
    from pipelines.cli import run

    base = ["build", "--sample", "--output", str(tmp_path / "out"), "--datasets", "paq"]
    assert run(base + ["--source-option", "paq.passages=best"]) == 2
    assert "paq.passages='best': expected one of first, all" in capsys.readouterr().err
    assert run(base + ["--source-option", "paq.filtered_only=maybe"]) == 2
    assert "paq.filtered_only='maybe'" in capsys.readouterr().err


def test_join_task_gives_what_the_per_passage_rule_gives():
    """pair_with_passages (vectorised) against passage_outcomes applied id by id: found,
    missing and repeated passage ids, several questions per passage."""
    passages = [("1", "one", 1), ("2", "two", 2), ("2", "two again", 9), ("3", "three", 3)]
    questions = [("2", "q b", 4), ("1", "q a", 2), ("5", "q missing", 3), ("2", "q c", 1), ("3", "q d", 5)]
    tables = {
        "passages": pa.Table.from_pylist([{"key": text_key(p), "passage_id": p, "text": t, "line": n}
                                          for p, t, n in passages], schema=paq.PASSAGE_TEXTS),
        "questions": pa.Table.from_pylist([{"key": text_key(p), "passage_id": p, "question": q,
                                            "source_file": "paq/m", "line": n}
                                           for p, q, n in questions], schema=paq.QUESTIONS),
    }
    joined = list(paq.pair_with_passages(tables, "paq/psgs_w100.tsv"))
    rows = sorted((r for item in joined if isinstance(item, pa.Table) for r in item.to_pylist()),
                  key=lambda r: r["record_id"])
    rejects = sorted((item.value["reason"], item.value["record_id"]) for item in joined
                     if not isinstance(item, pa.Table))
    expected = [item for pid in ("1", "2", "3", "5") for item in paq.rules.passage_outcomes(
        pid, [{"text": t, "line": n} for p, t, n in passages if p == pid],
        [{"question": q, "source_file": "paq/m", "line": n} for p, q, n in questions if p == pid],
        "paq/psgs_w100.tsv")]
    assert rows == sorted((r for r in expected if isinstance(r, dict)), key=lambda r: r["record_id"])
    assert rejects == sorted((r.value["reason"], r.value["record_id"]) for r in expected
                             if not isinstance(r, dict))
    assert ("duplicate_passage_id", "line 9") in rejects
    assert ("passage_missing", "line 3, passage 5") in rejects


@pytest.mark.parametrize("filtered_only,rule", [(True, "first"), (True, "all"), (False, "first")])
def test_selection_task_gives_what_the_per_question_rule_gives(filtered_only, rule):
    """select_candidates (vectorised where it can be) against candidate_outcomes applied
    question by question: listed or not, with one, two or no records, unusable records."""
    listed = [("q1", 1), ("q2", 2), ("q2", 7), ("q3", 3), ("q5", 5)]
    metadata = [("q1", ["4", "2"], None, 1), ("q2", ["9"], None, 2), ("q2", ["9", "8"], None, 3),
                ("q3", None, "no_passage", 4), ("q4", ["1"], None, 5)]
    tables = {
        "listed": pa.Table.from_pylist([{"key": text_key(q), "question": q, "source_file": "paq/f", "line": n}
                                        for q, n in listed], schema=paq.LISTED),
        "metadata": pa.Table.from_pylist([{"key": text_key(q), "question": q, "passage_ids": ids,
                                           "reason": reason, "detail": reason and "why", "excerpt": reason and "{}",
                                           "source_file": "paq/m", "line": n}
                                          for q, ids, reason, n in metadata], schema=paq.METADATA_RECORDS),
    }

    def outcome(items):
        rows = sorted((r["question"], r["passage_id"], r["line"]) for item in items if isinstance(item, pa.Table)
                      for r in item.to_pylist())
        rejects = sorted((i.value["reason"], i.value["record_id"]) for i in items if not isinstance(i, pa.Table))
        return rows, rejects

    got = outcome(list(paq.select_candidates(tables, filtered_only, rule)))
    expected = []
    for question in sorted({q for q, _ in listed} | {q for q, *_ in metadata}):
        records = [r for r in tables["metadata"].to_pylist() if r["question"] == question]
        entries = [e for e in tables["listed"].to_pylist() if e["question"] == question]
        for item in paq.rules.candidate_outcomes(question, entries, records, filtered_only):
            if isinstance(item, dict):
                expected += [pa.Table.from_pylist([{"key": 0, "passage_id": p, "question": question,
                                                    "source_file": "paq/m", "line": item["line"]}],
                                                  schema=paq.QUESTIONS)
                             for p in paq.rules.choose_passages(item["passage_ids"], rule)]
            else:
                expected.append(item)
    assert got == outcome(expected)
    assert ("no_metadata", "line 5") in got[1] and ("no_passage", "line 4") in got[1]


class TestPaqSample(SourceCase):
    SOURCE = "paq"
    ROWS = {"paq": 5}

    def test_every_passage_and_list_row_is_counted_once(self, build):
        # Passage 108 alone is named by no question; the 4 lines rejected where they are read
        # and the repeated 104 are taken. Every line of the list is taken: it selects its
        # metadata record, or is a record itself (no_metadata, or rejected where it is read).
        passages, listed = _sample_member("psgs_w100.tsv"), _sample_member("PAQ.filtered.jsonl")
        counted = build.manifest["input_rows"]["paq"]
        listed_rows = sum(1 for line in listed.splitlines() if line.strip())
        assert counted == {"PAQ.filtered.jsonl": {"taken": listed_rows, "skipped": {}},
                           "psgs_w100.tsv": _passage_rows_by_hand(passages, _named_passages(build))}
        assert counted["psgs_w100.tsv"] == {"taken": 10, "skipped": {"not_used": 1}}
        passage_rows = sum(1 for line in passages.splitlines()[1:] if line.strip())  # after the header
        for table, rows in (("PAQ.filtered.jsonl", listed_rows), ("psgs_w100.tsv", passage_rows)):
            assert counted[table]["taken"] + sum(counted[table]["skipped"].values()) == rows, table
