"""GooAQ: split.json streaming, the split join, collection answers, real excerpts, bad input."""
import io
import json

import ijson
import pytest

from pipelines.corpus.rejects import REJECTED
from pipelines.sources import gooaq
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

DATASET = "gooaq"


# -- split.json --------------------------------------------------------------------------

def _entries(document: bytes):
    return list(gooaq.iter_split_entries(io.BytesIO(document)))


def test_split_entries_of_the_real_shape():
    document = b'{"dev": [3880119], "test": [2022145], "train": [[2302335, 0.5]]}'
    assert _entries(document) == [("dev", 3880119), ("test", 2022145), ("train", [2302335, 0.5])]


def test_split_entries_of_every_list_and_nothing_else():
    split = {"dev": list(range(1000, 1100)), "test": [], "meta": {"v": 1, "item": [9]}, "version": 2,
             "train": [[i * 7919, round(i / 977, 6)] for i in range(2000)]}
    document = json.dumps(split, indent=1).encode("utf-8")
    expected = [(name, entry) for name, values in split.items() if isinstance(values, list)
                for entry in values]
    assert _entries(b"\xef\xbb\xbf" + document) == expected


@pytest.mark.parametrize("document", [b"", b"[1, 2]", b'{"train": [[1, 0.5], [2', b'{"train": [1 2]}',
                                      b'{"train": [1]} trailing', b'{"train": [1],}'])
def test_malformed_split_documents_raise_after_the_good_entries(document):
    with pytest.raises((gooaq.SplitFileError, ijson.JSONError)):
        _entries(document)


def test_read_split_file_yields_the_entries_before_a_break_then_raises():
    out = []
    with pytest.raises(ijson.JSONError):
        for item in gooaq.read_split_file(io.BytesIO(b'{"dev": [5], "train": [[1, 0.5], [true, 1], [2'),
                                          "gooaq/split.json"):
            out.append(item)
    ids = [item for item in out if isinstance(item, dict)]
    rejects = [item for item in out if not isinstance(item, dict)]
    assert ids == [{"id": 5, "split": "dev"}, {"id": 1, "split": "train"}]
    assert [r.value["reason"] for r in rejects] == ["bad_split_entry"]
    assert all(r.tag == REJECTED for r in rejects)
    assert list(gooaq.read_split_file(io.BytesIO(b""), "gooaq/split.json")) == []


@pytest.mark.parametrize("entry, expected", [(7, 7), ([7, 0.5], 7), ([7], 7), ("7", None), (True, None),
                                             ([], None), (None, None), (7.0, None),
                                             (1 << 63, None), (-(1 << 63), -(1 << 63))])
def test_split_entry_id(entry, expected):
    assert gooaq.split_entry_id(entry) == expected


@pytest.mark.parametrize("names, decision", [(["train"], "train"), (["train", "train"], "train"),
                                             (["dev"], "held_out"), (["test"], "held_out"),
                                             (["train", "dev"], "held_out"), ([], "unlisted")])
def test_split_decision(names, decision):
    assert gooaq.split_decision(names) == decision


# -- answers --------------------------------------------------------------------------------

def test_parse_collection_with_mixed_quotes():
    answer = ("[\"Step 1: Connect Your Android device. First, choose 'Data Recovery'\", "
              "'Step 2: Choose file types to Scan. ... ', 'Step 3: Preview.']")
    assert gooaq.parse_collection(answer) == [
        "Step 1: Connect Your Android device. First, choose 'Data Recovery'",
        "Step 2: Choose file types to Scan. ...", "Step 3: Preview."]


def test_parse_collection_never_executes_anything(tmp_path):
    marker = tmp_path / "executed"
    for answer in (f"[open({str(marker)!r}, 'w')]", f"[__import__('pathlib').Path({str(marker)!r}).touch()]",
                   "[x for x in ()]", "['a'] + ['b']"):
        with pytest.raises(ValueError):
            gooaq.parse_collection(answer)
    assert not marker.exists()


@pytest.mark.parametrize("answer", ["['a', 'b'", "not a list", "{'a': 1}", "[1, 2]", "['a', None]",
                                    "[" * 10_000 + "]" * 10_000, ""])
def test_parse_collection_rejects_what_is_not_a_list_of_strings(answer):
    with pytest.raises(ValueError):
        gooaq.parse_collection(answer)


def test_long_answer_text():
    assert gooaq.long_answer_text(None, "knowledge")[1] == "no_long_answer"
    assert gooaq.long_answer_text("A snippet ... more.", "feat_snip") == ("A snippet ... more.", "", "")
    assert gooaq.long_answer_text("['eager.', 'eagle.']", "collection") == ("eager. eagle.", "", "")
    assert gooaq.long_answer_text("['eager.'", "collection")[1] == "bad_collection_answer"
    # A list-looking snippet of another type is text, not parsed.
    assert gooaq.long_answer_text("['x']", "feat_snip") == ("['x']", "", "")


@pytest.mark.parametrize("record, reason", [
    ({"question": "q?", "answer": "a"}, "bad_id"),
    ({"id": True, "question": "q?", "answer": "a"}, "bad_id"),
    ({"id": "12", "question": "q?", "answer": "a"}, "bad_id"),
    ({"id": 1 << 64, "question": "q?", "answer": "a"}, "bad_id"),
    ({"id": 1, "answer": "a"}, "bad_field"),
    ({"id": 1, "question": ["q?"], "answer": "a"}, "bad_field"),
    ({"id": 1, "question": "q?", "answer": 42}, "bad_field"),
    ({"id": 1, "question": "q?", "answer": "a", "answer_type": 3}, "bad_field"),
])
def test_record_problem(record, reason):
    assert gooaq.record_problem(record)[0] == reason


def test_record_problem_accepts_a_null_answer():
    assert gooaq.record_problem({"id": 1, "question": "q?", "answer": None, "answer_type": "knowledge"}) is None


# -- builds -----------------------------------------------------------------------------------

INOA_ANSWER = ("Inoa = Grey Coverage. Differences in Loreal's Majirel vs. ... While both colour methods "
               "provide different results, they both cover 100% of greys and provide amazing shine and "
               "reflect to the hair. Your colourist can discuss during consultation which would be most "
               "suitable to you and your lifestyle.")


def test_real_excerpt_keeps_the_train_id_only(tmp_path, upstream_samples):
    # split.json: dev 3880119, test 2022145, train [[2302335, 0.5]]; README_examples.jsonl
    # is not a gooaq.jsonl and is not read.
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET])
    assert result.pairs(DATASET) == {("is inoa better than majirel?", INOA_ANSWER, None)}
    assert result.rows[DATASET][0]["record_id"] == "2302335"
    assert result.rows[DATASET][0]["source_file"] == "gooaq/gooaq.jsonl"
    assert result.reasons(DATASET) == {}
    assert [i["path"] for i in result.manifest["inputs"]] == ["gooaq/gooaq.jsonl", "gooaq/split.json"]


def test_real_records_of_every_answer_type(tmp_path, upstream_samples):
    # The 9 README records and the 3 fixture rows in one gooaq.jsonl, every id in train.
    lines = []
    for name in ("README_examples.jsonl", "gooaq.jsonl"):
        lines += (upstream_samples / "gooaq" / name).read_text("utf-8").splitlines()
    folder = tmp_path / "in" / "gooaq"
    folder.mkdir(parents=True)
    (folder / "gooaq.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ids = [json.loads(line)["id"] for line in lines]
    (folder / "split.json").write_text(json.dumps({"dev": [], "test": [], "train": [[i, 0.5] for i in ids]}))
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.pairs(DATASET) == {
        ("what is the difference between collagen and whey protein?",
         "The main differences between the amino acid profiles of whey and collagen are that whey contains "
         "all 9 essential amino acids, while collagen only has 8. ... Collagen is a fibrous protein found "
         "in the skin, cartilage, and bones of animals whereas whey comes from milk.", None),
        ("carbon dioxide comprises approximately what percentage of tropospheric gases?",
         "Carbon dioxide comprise approximately . 04% of tropospheric gases.", None),
        ("are words that start with e?", "eager. eagle. eagre. eared. earls. early. earns. earth.", None),
        ("how long does it take to boil a hard egg?",
         "Place your eggs in a single layer on the bottom of your pot and cover with cold water. ... "
         "Over high heat, bring your eggs to a rolling boil. Remove from heat and let stand in water for "
         "10-12 minutes for large eggs. ... Drain water and immediately run cold water over eggs until "
         "cooled.", None),
        ("is ways to lose weight?",
         "Trying intermittent fasting. ... Tracking your diet and exercise. ... Eating mindfully. ... "
         "Eating protein for breakfast. ... Cutting back on sugar and refined carbohydrates. ... Eating "
         "plenty of fiber. ... Balancing gut bacteria. ... Getting a good night's sleep.", None),
        ("who are in the russell group universities?",
         "University of Birmingham. University of Bristol. University of Cambridge. Cardiff University. "
         "Durham University. University of Edinburgh. University of Exeter. University of Glasgow.", None),
        ("how to recover deleted images from unrooted android?",
         "Step 1: Connect Your Android device. First, launch Android Data Recovery software on computer "
         "and choose 'Data Recovery' Step 2: Choose file types to Scan. ... Step 3: Preview and restore "
         "lost data from Android phone.", None),
        ("is inoa better than majirel?", INOA_ANSWER, None),
    }
    # knowledge x2 and unit_conv x2 have only a short answer.
    assert result.reasons(DATASET) == {"no_long_answer": 4}


def test_bundled_sample_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET])
    entry = result.manifest["datasets"][DATASET]
    assert entry["verdict"] == "match", entry.get("problems")
    assert ("how to clean a cast iron pan?",
            "Rinse the pan with hot water while it is still warm. Scrub off stuck food with coarse salt. ... "
            "Dry it completely on the stove's lowest heat. Rub a thin layer of oil into the surface.",
            None) in result.pairs(DATASET)


def test_bad_input_ends_in_counted_rejects(tmp_path):
    folder = tmp_path / "in" / "gooaq"
    (folder / "extra").mkdir(parents=True)
    rows = [
        {"id": 1, "question": "good row?", "short_answer": None, "answer": "Yes.", "answer_type": "feat_snip"},
        {"id": 2, "question": "answer is a number?", "answer": 7, "answer_type": "feat_snip"},
        {"id": True, "question": "id is a bool?", "answer": "x", "answer_type": "feat_snip"},
        {"id": 3, "question": "listed after the split file breaks?", "answer": "x", "answer_type": "feat_snip"},
        {"id": 5, "question": "held out?", "answer": "x", "answer_type": "feat_snip"},
        {"id": 6, "answer": "no question", "answer_type": "feat_snip"},
    ]
    text = "\n".join(json.dumps(r) for r in rows).encode("utf-8")
    # Named .gz but not gzip; a Latin-1 line; a line cut short; a UTF-16 line, which splits
    # into two lines of NUL-laced bytes, neither JSON.
    (folder / "gooaq.jsonl.gz").write_bytes(
        text + b'\n{"id": 8, "question": "caf\xe9?"}\n{"id": 9, "question": "cut\n'
        + '{"id": 10}\n'.encode("utf-16-le") + b"\n")
    (folder / "extra" / "gooaq.jsonl").write_bytes(b"")
    (folder / "split.json").write_bytes(b'{"dev": [5], "test": [], "train": [[1, 0.5], [2, 0.5], ["x", 1], [3')
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.pairs(DATASET) == {("good row?", "Yes.", None)}
    assert result.reasons(DATASET) == {
        "bad_encoding": 1, "bad_field": 2, "bad_id": 1, "bad_json": 3, "bad_split_entry": 1,
        "empty_file": 1, "not_in_split": 1, "unreadable_file": 1}


def test_missing_split_file_is_a_counted_reject(tmp_path):
    folder = tmp_path / "in" / "gooaq"
    folder.mkdir(parents=True)
    (folder / "gooaq.jsonl").write_text(json.dumps({"id": 1, "question": "q?", "answer": "a",
                                                    "answer_type": "feat_snip"}) + "\n")
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.manifest["datasets"][DATASET]["rows"] == 0
    assert result.reasons(DATASET) == {"missing_split_file": 1, "not_in_split": 1}


class TestGooaqSample(SourceCase):
    SOURCE = "gooaq"
    ROWS = {"gooaq": 4}
