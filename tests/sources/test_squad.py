"""SQuAD source: pair rule, versions, the real excerpt, the bundled sample and bad input."""
import io
import json
import lzma

import pytest

from pipelines.corpus.source import OptionError, SourceContext
from pipelines.sources import squad
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

DATASET = "squad"


def _qa(**fields):
    return {"question": "Who?", "id": "q1", "answers": [{"text": "x", "answer_start": 0}],
            "is_impossible": False, **fields}


def _document(qas, context="Some context."):
    return {"version": "v2.0", "data": [{"title": "T", "paragraphs": [{"qas": qas, "context": context}]}]}


def _read(document) -> list:
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    return list(squad.read_squad_file(io.BytesIO(data), "squad_v2/train-v2.0.json"))


# -- rules --------------------------------------------------------------------------------

def test_answerable_questions_qualify():
    assert squad.question_problem(_qa()) == (None, "")
    v11 = _qa()
    del v11["is_impossible"]
    assert squad.question_problem(v11) == (None, "")


@pytest.mark.parametrize("qa, reason", [
    ("not a dict", "malformed_question"),
    (_qa(id=None), "malformed_question"),
    (_qa(question=["Who?"]), "malformed_question"),
    (_qa(is_impossible="false"), "malformed_question"),
    (_qa(answers=None), "malformed_question"),
    (_qa(is_impossible=True, answers=[]), "unanswerable"),
    (_qa(answers=[]), "no_answer"),
])
def test_question_problems(qa, reason):
    assert squad.question_problem(qa)[0] == reason


def test_pair_is_question_and_context():
    rows = _read(_document([_qa()]))
    assert [(r["anchor"], r["positive"], r["negative"], r["record_id"]) for r in rows] == [
        ("Who?", "Some context.", None, "q1")]


def test_malformed_structure_is_rejected():
    assert [i.value["reason"] for i in _read([1, 2])] == ["malformed_file"]
    assert [i.value["reason"] for i in _read({"data": [{"paragraphs": 3}]})] == ["malformed_article"]
    items = _read(_document([_qa()], context=None))
    assert [i.value["reason"] for i in items] == ["malformed_paragraph"]


def test_file_names():
    assert squad.parse_file_name("train-v2.0.json") == ("train", "v2.0")
    assert squad.parse_file_name("dev-v1.1.json.gz") == ("dev", "v1.1")
    assert squad.parse_file_name("train-v2.0.json.bak") is None


def _ctx(root, **options):
    return SourceContext(input_root=str(root), source_dir=str(root / "squad_v2"),
                         datasets=(DATASET,), options=options)


def test_version_choice(tmp_path):
    folder = tmp_path / "squad_v2"
    folder.mkdir()
    for name in ("train-v2.0.json", "train-v1.1.json", "dev-v2.0.json", "notes.txt"):
        (folder / name).write_text("{}")
    names = lambda **o: sorted(p.rsplit("/", 1)[-1] for p, _ in squad.SOURCE.find_files(_ctx(tmp_path, **o)))
    assert names() == ["train-v1.1.json"]
    assert names(version="v2.0") == ["train-v2.0.json"]
    assert names(version="v2.0", splits="train,dev") == ["dev-v2.0.json", "train-v2.0.json"]
    with pytest.raises(OptionError, match="expected one of auto, v1.1, v2.0"):
        names(version="v3")
    with pytest.raises(OptionError, match="subset of train, dev"):
        names(splits="test")


# -- real excerpt -------------------------------------------------------------------------

NORMANS = ("The Normans (Norman: Nourmands; French: Normands; Latin: Normanni) were the people who in the "
           "10th and 11th centuries gave their name to Normandy, a region in France.")


def test_real_excerpt(upstream_samples, tmp_path):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET])
    rows = sorted(result.rows[DATASET], key=lambda r: r["record_id"])
    assert [(r["anchor"], r["record_id"]) for r in rows] == [
        ("In what country is Normandy located?", "56ddde6b9a695914005b9628"),
        ("When were the Normans in Normandy?", "56ddde6b9a695914005b9629")]
    assert all(r["positive"].startswith(NORMANS) for r in rows)
    assert rows[0]["positive"].endswith("continued to evolve over the succeeding centuries.")
    assert rows[0]["source_file"] == "squad_v2/train-v2.0.json"
    assert result.reasons(DATASET) == {}


# -- bundled sample -----------------------------------------------------------------------

def test_sample_build_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET])
    entry = result.manifest["datasets"][DATASET]
    assert entry["verdict"] == "match", entry.get("problems")
    anchors = {a for a, _p, _n in result.pairs(DATASET)}
    assert anchors == {"Who first isolated oxygen?", "What is the atomic number of oxygen?",
                       "Which chemist named the element oxygène?",
                       "When did the first café in Vienna open?"}


def test_sample_with_dev_split(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET],
                       source_options={"squad": {"splits": "train,dev"}})
    assert len(result.rows[DATASET]) == 5
    assert result.reasons(DATASET)["unanswerable"] == 3


# -- v1.1 and bad input -------------------------------------------------------------------

def test_v11_is_read_and_bad_files_are_counted(tmp_path):
    folder = tmp_path / "in" / "squad_v2"
    folder.mkdir(parents=True)
    v11 = {"version": "1.1", "data": [{"title": "T", "paragraphs": [
        {"context": "Paris is the capital of France.",
         "qas": [{"answers": [{"answer_start": 0, "text": "Paris"}], "question": "What is the capital of France?",
                  "id": "5733be284776f41900661182"}]}]}]}
    (folder / "train-v1.1.json").write_text(json.dumps(v11))
    (folder / "train-v1.1.json.gz").write_bytes("{\"data\": [\"caf\u00e9\"]}".encode("latin-1"))  # not gzip, not UTF-8
    (folder / "train-v1.1.json.xz").write_bytes(lzma.compress(json.dumps(v11).encode())[:40])  # truncated
    (folder / "train-v1.1.json.bz2").write_bytes(b"")  # empty
    (folder / "dev-v1.1.json").write_text('{"data": [{"title": "T", "paragraphs": [{"qas": [{"id": 5}]')
    (folder / "train-v2.0.json").write_text(json.dumps(_document([_qa()])))  # other version: not read
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET],
                       source_options={"squad": {"splits": "train,dev"}})
    assert result.pairs(DATASET) == {("What is the capital of France?", "Paris is the capital of France.", None)}
    assert result.reasons(DATASET) == {"empty_file": 1, "unreadable_file": 3}


class TestSquadSample(SourceCase):
    SOURCE = "squad"
    ROWS = {"squad": 4}
