"""Natural Questions: rule functions, the official toy example (real full format), the
real upstream excerpts folder, the bundled sample and bad input."""
import gzip
import json
import re

import pytest

from pipelines.sources import natural_questions as nq
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

TOY_PAIR = ("who founded google", "Google was founded in 1998 by : Larry Sergey", None)


def toy_example(upstream_samples) -> dict:
    """The official toy example of the full format, as printed in toy_example.md
    (Python ``True`` literals, no outer braces, no-break spaces as indentation), read as
    the JSON line it stands for."""
    text = (upstream_samples / "natural_questions" / "toy_example.md").read_text("utf-8")
    text = text.replace("\xa0", " ")
    body = re.search(r"```json\n(.*?)```", text, re.S).group(1)
    return json.loads("{" + body.replace("True", "true").replace("False", "false") + "}")


def fixed_toy(upstream_samples) -> dict:
    """The toy example with its one typo (token 9 spelt ``"Token"``) corrected."""
    example = toy_example(upstream_samples)
    token = example["document_tokens"][9]
    token["token"] = token.pop("Token")
    return example


def simplify(example: dict) -> dict:
    """The simplified form of a full example, as Google's ``simplify_nq_example`` writes it."""
    return {
        "question_text": example["question_text"],
        "example_id": example["example_id"],
        "document_url": example["document_url"],
        "document_text": " ".join(t["token"].replace(" ", "_") for t in example["document_tokens"]),
        "long_answer_candidates": [{k: v for k, v in c.items() if "byte" not in k}
                                   for c in example["long_answer_candidates"]],
        "annotations": example["annotations"],
    }


# -- rule and parse functions ----------------------------------------------------------

def test_train_file_kind_recognises_only_train_files():
    assert nq.train_file_kind("v1.0-simplified_simplified-nq-train.jsonl.gz") == nq.SIMPLIFIED
    assert nq.train_file_kind("simplified-nq-train.jsonl") == nq.SIMPLIFIED
    assert nq.train_file_kind("nq-train-07.jsonl.gz") == nq.FULL
    for other in ("nq-dev-00.jsonl.gz", "nq-train-sample.jsonl.gz", "simplified-nq-test.jsonl",
                  "NQ-open.train.jsonl", "nq-train-kilt.jsonl", "toy_example.md"):
        assert nq.train_file_kind(other) is None, other


def test_paragraph_text_keeps_only_paragraphs():
    tokens = [("<P>", True), ("Paris", False), ("<A>", True), ("France", False), ("</A>", True),
              ("</P>", True)]
    assert nq.paragraph_text(tokens) == ("Paris France", "")
    assert nq.paragraph_text([("<Table>", True), ("x", False)]) == (None, "<Table>")
    assert nq.paragraph_text([("<Ul>", True), ("x", False)]) == (None, "<Ul>")
    # A "<P>" that is page text, not a tag, does not make a paragraph.
    assert nq.paragraph_text([("<P>", False), ("x", False)]) == (None, "<P>")
    assert nq.paragraph_text([]) == (None, "")


def test_simplified_tokens_split_on_single_spaces():
    tokens = nq.simplified_tokens("<P> a  b </P>")
    assert tokens == [("<P>", True), ("a", False), ("", False), ("b", False), ("</P>", True)]


def test_long_answer_span():
    def example(*spans):
        return {"annotations": [{"long_answer": {"start_token": s, "end_token": e}} for s, e in spans]}
    assert nq.long_answer_span(example((-1, -1))) is None
    assert nq.long_answer_span(example((-1, -1), (4, 9), (2, 3))) == (4, 9)
    with pytest.raises(nq.MalformedExample):
        nq.long_answer_span({"annotations": None})
    with pytest.raises(nq.MalformedExample):
        nq.long_answer_span(example(("4", 9)))


def test_example_id_is_kept_exactly():
    assert nq.example_id({"example_id": -4893513346627417215}) == "-4893513346627417215"
    assert nq.example_id({"example_id": 1.5}) is None
    assert nq.example_id({}) is None


# -- real excerpts ----------------------------------------------------------------------

def test_official_toy_example_gives_its_paragraph_in_both_formats(upstream_samples):
    example = fixed_toy(upstream_samples)
    kind, row = nq.example_outcome(example, "natural_questions/nq-train-00.jsonl.gz")
    assert kind == "row"
    assert (row["anchor"], row["positive"], row["record_id"]) == (
        "who founded google", "Google was founded in 1998 by : Larry Sergey", "797803103760793766")
    kind, simplified_row = nq.example_outcome(simplify(example), "x")
    assert kind == "row" and simplified_row["positive"] == row["positive"]


def test_official_toy_example_as_printed_is_malformed(upstream_samples):
    kind, reject = nq.example_outcome(toy_example(upstream_samples), "toy")
    assert kind == "reject" and reject["reason"] == "malformed_example"
    assert "document_tokens[9]" in reject["detail"]


def test_real_nq_open_and_kilt_lines_are_not_train_examples(upstream_samples):
    folder = upstream_samples / "natural_questions"
    for path in [*sorted((folder / "nq_open").iterdir()), *sorted((folder / "kilt").iterdir())]:
        with open(path, "rb") as stream:
            first = json.loads(stream.readline())
        kind, reject = nq.example_outcome(first, path.name)
        assert kind == "reject" and reject["reason"] == "unknown_format", path.name


def test_build_on_real_excerpts_folder_reads_no_open_or_kilt_file(upstream_samples, tmp_path):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=["natural_questions"])
    assert result.rows["natural_questions"] == []
    assert result.reasons("natural_questions") == {"missing_file": 1}
    assert result.manifest["inputs"] == []


# -- builds -----------------------------------------------------------------------------

def test_sample_build_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=["natural_questions"])
    entry = result.manifest["datasets"]["natural_questions"]
    assert entry["verdict"] == "match", entry.get("problems")
    pairs = result.pairs("natural_questions")
    assert TOY_PAIR in pairs
    assert ("how long is the main span of the humber bridge",
            "The Humber Bridge has a main span of 1_410 metres and was the longest single - span "
            "suspension bridge in the world from 1981 until 1998 .", None) in pairs
    assert sorted(i["path"] for i in result.manifest["inputs"]) == [
        "natural_questions/v1.0-simplified_simplified-nq-train.jsonl.gz",
        "natural_questions/v1.0/train/nq-train-00.jsonl.gz"]


def test_bad_input_ends_in_counted_rejects(upstream_samples, tmp_path):
    folder = tmp_path / "in" / "natural_questions"
    (folder / "v1.0" / "train").mkdir(parents=True)
    toy = fixed_toy(upstream_samples)
    wrong_type = simplify(toy) | {"example_id": 11, "document_text": ["<P>", "x"]}
    long_line = simplify(toy) | {"example_id": 12, "document_text": simplify(toy)["document_text"]
                                 + " <P> padding </P>" * 400_000}
    lines = [
        json.dumps(toy).encode(),                     # full format: a row
        json.dumps(long_line).encode(),               # a 7 MB simplified line: a row
        json.dumps(wrong_type).encode(),              # document_text is a list
        json.dumps({"example_id": 13, "document_tokens": [], "annotations": []}).encode(),
        b'{"example_id": 14, "question_text": "caf\xe9"}',
        b"[1, 2]",
        b"",
    ]
    (folder / "v1.0" / "train" / "nq-train-00.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    # Named .gz but plain text: read as what it is (compression is sniffed).
    (folder / "v1.0" / "train" / "nq-train-01.jsonl.gz").write_bytes(
        json.dumps(simplify(toy) | {"example_id": 15, "question_text": 7}).encode() + b"\n")
    # Starts like gzip, then breaks off.
    (folder / "v1.0" / "train" / "nq-train-02.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 50)[:12])
    (folder / "simplified-nq-train.jsonl").write_bytes(b"")  # empty: the core's empty_file
    (folder / "nq-dev-00.jsonl.gz").write_bytes(b"not even read")
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=["natural_questions"])
    assert sorted(r["record_id"] for r in result.rows["natural_questions"]) == ["12", "797803103760793766"]
    assert result.reasons("natural_questions") == {
        "bad_encoding": 1, "empty_file": 1, "malformed_example": 3, "not_an_object": 1,
        "unreadable_file": 1}


class TestNaturalQuestionsSample(SourceCase):
    SOURCE = "natural_questions"
    ROWS = {"natural_questions": 4}
