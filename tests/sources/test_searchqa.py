"""SearchQA: rule functions, the real upstream excerpt, the bundled sample, bad input."""
import gzip
import io
import json
import zipfile

import pyarrow as pa
import pytest

from pipelines.sources import searchqa as sq
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

REAL_19 = ("No. 10: FB/LB for Columbia U. in the 1920s; MVP for the Yankees in '27 & '36; "
           "\"Gibraltar in Cleats\"")


# -- rule functions ---------------------------------------------------------------------

def test_merge_takes_first_five_non_empty_snippets_in_rank_order():
    results = [{"snippet": "a\nb"}, {"snippet": ""}, {"snippet": None}, {"title": "no snippet"},
               {"snippet": "c"}, {"snippet": "   "}, {"snippet": "d"}, {"snippet": "e"},
               {"snippet": "f"}, {"snippet": "g"}, "not a result"]
    assert sq.merge_top_snippets(results) == "a b c d e f"
    assert sq.merge_top_snippets(results, top_k=2) == "a b c"


def test_merge_keeps_snippets_as_plain_text():
    assert sq.merge_top_snippets([{"snippet": "[20:54] <triviacat> clue"}]) == "[20:54] <triviacat> clue"
    assert sq.merge_top_snippets([]) == ""


def test_split_of_paths():
    assert sq.split_of("data_json/train/000001-x.json") == "train"
    assert sq.split_of("data_json/val.zip!val/000001-x.json") == "val"
    assert sq.split_of("data_json/test.zip!000001-x.json") == "test"
    assert sq.split_of("jeopardy/030000-49999/000001-x.json") == "jeopardy"


def test_clue_id_from_field_or_file_name():
    assert sq.clue_id({"id": 19}, "000019-a.json") == "19"
    assert sq.clue_id({"id": "0042"}, "x.json") == "42"
    assert sq.clue_id({}, "dir/000401-3011_jeopardy_animals_400.json") == "401"
    assert sq.clue_id({"id": True}, "noid.json") is None


def test_parse_clue_rejects():
    def reason(data):
        item = sq.parse_clue(data, "f.json", 5)
        return item["id"] if isinstance(item, dict) else item.value["reason"]
    assert reason(b" \n") == "blank_file"
    assert list(sq.read_clue(io.BytesIO(b""), "f.json", 5)) == []  # ReadFiles records empty_file
    assert reason(b'{"id": 1, "question": "caf\xe9"}') == "bad_encoding"
    assert reason(b'{"id": 1, "question": ') == "bad_json"
    assert reason(b"[]") == "not_an_object"
    assert reason(b'{"id": 1, "question": 5, "search_results": []}') == "malformed_record"
    assert reason(b'{"id": 1, "question": "q", "search_results": {}}') == "malformed_record"
    assert reason(b'{"question": "q", "search_results": []}') == "malformed_record"
    assert reason(b'{"id": 7, "question": "q", "search_results": []}') == "7"


def test_keep_first_copy_prefers_split_order_then_file():
    copies = [{"id": "1", "split": "test", "source_file": "a", "clue": "q"},
              {"id": "1", "split": "jeopardy", "source_file": "0", "clue": "q"},
              {"id": "1", "split": "val", "source_file": "z", "clue": "q"}]
    out = list(sq.keep_first_copy("1", copies))
    assert out[0]["split"] == "val"
    assert [o.value["reason"] for o in out[1:]] == ["duplicate_clue", "duplicate_clue"]


def test_pair_first_copies_pairs_one_copy_per_id_and_rejects_the_rest():
    def clue(identifier, split, source_file, text, snippets="S"):
        return {"key": sq.text_key(identifier), "id": identifier, "split": split,
                "source_file": source_file, "clue": text, "snippets": snippets}
    clues = [clue("2", "test", "t/2", "Q2"), clue("1", "jeopardy", "j/1", "Q1"),
             clue("2", "val", "v/2", "Q2"), clue("3", "train", "x/3", "", "S3"),
             clue("4", "train", "x/4", "Q4", "")]
    out = list(sq.pair_first_copies({"clues": pa.Table.from_pylist(clues, schema=sq.CLUES)}))
    tables = [item for item in out if isinstance(item, pa.Table)]
    rejects = sorted((o.value["reason"], o.value["source_file"]) for o in out if not isinstance(o, pa.Table))
    assert len(tables) == 1
    assert [(r["record_id"], r["source_file"]) for r in tables[0].to_pylist()] == [("1", "j/1"), ("2", "v/2")]
    assert rejects == [("duplicate_clue", "t/2"), ("empty_clue", "x/3"), ("no_snippets", "x/4")]


def test_options():
    with pytest.raises(ValueError):
        sq.parse_splits("dev")
    with pytest.raises(ValueError):
        sq.positive_int("0")


# -- builds -------------------------------------------------------------------------------

def test_real_excerpt(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=["searchqa"])
    rows = {row["record_id"]: row for row in result.rows["searchqa"]}
    assert sorted(rows) == ["1506", "19", "38", "528"]
    assert rows["19"]["anchor"] == REAL_19
    assert rows["19"]["positive"].startswith('+ "question": "\'No. 10: FB/LB for Columbia U. in the 1920s;')
    assert rows["19"]["positive"].endswith('"Gibraltar in Cleats". (Lou) Gehrig.')
    # Clue 1506 has six results: the sixth (Pinterest) is beyond the top five.
    assert "Animal Farm" not in rows["1506"]["positive"]
    assert rows["1506"]["positive"].endswith("I would say he's a patriarch, but not a prophet.")
    assert "<triviacat> MUSICAL TRAINS" in rows["38"]["positive"]
    # val and test hold the same two files: the val copies are kept.
    assert rows["528"]["source_file"].startswith("searchqa/data_json/val/")
    assert result.reasons("searchqa") == {"duplicate_clue": 2}


def test_bundled_sample_matches(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=["searchqa"])
    entry = result.manifest["datasets"]["searchqa"]
    assert entry["verdict"] == "match", entry.get("problems")
    rows = {row["record_id"]: row for row in result.rows["searchqa"]}
    assert rows["101"]["source_file"] == (
        "searchqa/data_json/train.zip!train/000101-4512_jeopardy_worldcapitals_400.json")
    assert "beyond the top five" not in rows["101"]["positive"]
    assert rows["301"]["positive"].endswith("inspired by Camembert.")


def test_top_k_and_splits_options(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=["searchqa"],
                       source_options={"searchqa": {"top_k": "1", "splits": "train"}})
    rows = {row["record_id"]: row for row in result.rows["searchqa"]}
    assert sorted(rows) == ["101", "102", "105"]
    assert rows["102"]["positive"].endswith("first published in 1890.")


def test_bad_inputs_become_counted_rejects(tmp_path):
    root = tmp_path / "in" / "searchqa" / "data_json"
    (root / "train").mkdir(parents=True)
    clue = {"id": 5, "question": "Q", "search_results": [{"snippet": "S"}]}
    (root / "train" / "000005-a.json").write_bytes(json.dumps(clue).encode())
    (root / "train" / "000006-b.json.gz").write_bytes(b'{"id": 6, "question": "not gzip", '
                                                      b'"search_results": [{"snippet": "T"}]}')
    (root / "train" / "000007-c.json").write_bytes(gzip.compress(b'{"id": 7, "question": "trunc')[:-6])
    (root / "val.zip").write_bytes(b"PK\x03\x04 broken zip")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("test/readme.txt", "no clues here")
    (root / "test.zip").write_bytes(buffer.getvalue())
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=["searchqa"])
    assert result.pairs("searchqa") == {("Q", "S", None), ("not gzip", "T", None)}
    assert result.reasons("searchqa") == {"no_member": 1, "unreadable_file": 2}


class TestSearchqaSample(SourceCase):
    SOURCE = "searchqa"
    ROWS = {"searchqa": 6}
