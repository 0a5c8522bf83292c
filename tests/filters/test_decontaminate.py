"""The decontamination step (pipelines.filters.decontaminate) in real pipelines: rows as
Arrow tables and as dicts, the index as a side input (bytes, or a file a worker reads)."""
from __future__ import annotations

import json
import re

import apache_beam as beam
import pyarrow as pa
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines.corpus import accounting
from pipelines.corpus.evalsets import read_evalsets
from pipelines.corpus.rejects import REJECTED
from pipelines.corpus.schema import make_row, row_arrow_schema
from pipelines.engine import as_tables
from pipelines.filters.decontaminate import (
    REASON,
    Decontaminate,
    index_side_input,
    load_index,
)

DATASET = "msmarco_triplets"
PASSAGE = ("Photosynthesis is the process by which green plants and some other organisms use sunlight "
           "to synthesize foods from carbon dioxide and water, generally involving the green pigment "
           "chlorophyll and generating oxygen as a byproduct.")


def _row(n: int, anchor: str, positive: str, negative: str | None = "an unrelated negative passage"):
    return make_row(DATASET, anchor, positive, negative, source_file="msmarco/triples.tsv", record_id=f"r{n}")


# (row, (field, evaluation set, id, rule) when the row overlaps an evaluation text)
PLANTED = [
    (_row(0, "how many calories are in a banana", "A medium banana has about 105 calories."),
     ("anchor", "nq-test", "q1", "exact")),
    (_row(1, "How Many Calories Are In A Banana?!", "Bananas are rich in potassium."),
     ("anchor", "nq-test", "q1", "exact")),
    (_row(2, "roughly how many calories are in one banana", "Calories vary with size."),
     ("anchor", "nq-test", "q1", "jaccard")),
    (_row(3, "what does photosynthesis produce", "Plants make food. " + PASSAGE[:150] + " More follows."),
     ("positive", "nq-test", "corpus:doc7", "13-gram")),
    (_row(4, "Why is the sky blue during the day?", "Rayleigh scattering."),
     ("anchor", "quora-dev", "42", "exact")),
    (_row(5, "Which river is the longest in Africa?", "why is the sky blue during the day"),
     ("anchor", "quora-dev", "43", "jaccard")),
]
KEPT = [
    _row(10, "how many calories are in an apple", "An apple has about 95 calories."),
    _row(11, "what is the tallest mountain in Europe", "Mount Elbrus, in the Caucasus."),
    _row(12, "why is grass green", "Chlorophyll absorbs red and blue light.", None),
    _row(13, "photosynthesis", "Photosynthesis happens in chloroplasts, using light, water and carbon dioxide."),
]


@pytest.fixture(scope="module")
def evalsets(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalsets")
    beir = root / "nq-test"
    (beir / "qrels").mkdir(parents=True)
    queries = [{"_id": "q1", "text": "How many calories are in a banana?"},
               {"_id": "q2", "text": "What does the chlorophyll in a leaf do?"},
               {"_id": "q3", "text": "A training query the qrels do not name"}]
    (beir / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (beir / "corpus.jsonl").write_text(json.dumps({"_id": "doc7", "title": "Photosynthesis", "text": PASSAGE}) + "\n")
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tdoc3\t0\nq2\tdoc7\t1\n")
    (root / "quora-dev.tsv").write_text("42\tWhy is the sky blue during the day?\n"
                                        "43\tWhat is the longest river in Africa?\n")
    return read_evalsets([str(beir), str(root / "quora-dev.tsv")])


def _expected_rejects():
    return [(row["record_id"], REASON, f"{field} overlaps evaluation set {evalset!r}, id {entry!r} (rule {rule})")
            for row, (field, evalset, entry, rule) in PLANTED]


def _run(evalsets, make_input, index, rows_per_batch=4096):
    """Run the step on PLANTED + KEPT; check kept rows and rejects; return the result."""
    pipeline = beam.Pipeline(runner="FnApiRunner")
    side = index_side_input(pipeline, index)
    rows = make_input(pipeline, [row for row, _ in PLANTED] + KEPT)
    out = rows | f"{DATASET}/Decontaminate" >> Decontaminate(DATASET, side, rows_per_batch=rows_per_batch)
    kept = out.rows | "Kept" >> beam.FlatMap(lambda item: item.to_pylist() if isinstance(item, pa.Table) else [item])
    kinds = out.rows | "Kinds" >> beam.Map(lambda item: type(item).__name__)
    rejects = out[REJECTED] | "Rejects" >> beam.Map(  # the similarity of a jaccard match left out
        lambda r: (r["record_id"], r["reason"], re.sub(r", similarity 0\.\d\d\)$", ")", r["detail"])))
    assert_that(kept, equal_to(KEPT), label="KeptRows")
    assert_that(rejects, equal_to(_expected_rejects()), label="RejectedRows")
    excerpts = out[REJECTED] | "Excerpts" >> beam.Map(lambda r: json.loads(r["excerpt"])["record_id"] == r["record_id"])
    assert_that(excerpts, equal_to([True] * len(PLANTED)), label="Excerpts")
    result = pipeline.run()
    result.wait_until_finish()
    return result, kinds


def _tables(pipeline, rows):
    schema = row_arrow_schema()
    return as_tables(pipeline | "Tables" >> beam.Create(
        [pa.Table.from_pylist(rows[:5], schema=schema), pa.Table.from_pylist(rows[5:], schema=schema)]))


def _dicts(pipeline, rows):
    return pipeline | "Dicts" >> beam.Create(rows)


def _counts(result):
    return accounting.collect_named(result, "overlap."), accounting.collect(result)[DATASET]["rows_dropped"]


def test_tables_drop_every_planted_overlap_and_nothing_else(evalsets):
    result, _ = _run(evalsets, _tables, evalsets.index.to_bytes())
    assert _counts(result) == ({DATASET: {"nq-test": 4, "quora-dev": 2}}, len(PLANTED))


@pytest.mark.parametrize("rows_per_batch", [3, 4096])
def test_dicts_drop_every_planted_overlap_and_nothing_else(evalsets, rows_per_batch):
    result, _ = _run(evalsets, _dicts, evalsets.index.to_bytes(), rows_per_batch)
    assert _counts(result) == ({DATASET: {"nq-test": 4, "quora-dev": 2}}, len(PLANTED))


def test_rows_keep_their_kind_and_the_index_can_come_from_a_file(evalsets, tmp_path):
    path = tmp_path / "evalindex.bin"
    path.write_bytes(evalsets.index.to_bytes())
    for label, make_input, kind in (("tables", _tables, "Table"), ("dicts", _dicts, "dict")):
        pipeline = beam.Pipeline(runner="FnApiRunner")
        side = index_side_input(pipeline, str(path))
        out = make_input(pipeline, KEPT + [PLANTED[0][0]]) | Decontaminate(DATASET, side)
        assert_that(out.rows | beam.Map(lambda item: type(item).__name__), equal_to([kind]) if kind == "Table"
                    else equal_to([kind] * len(KEPT)))
        assert_that(out[REJECTED] | beam.Map(lambda r: r["record_id"]), equal_to(["r0"]), label="Rejected")
        pipeline.run().wait_until_finish()
        if kind == "Table":
            assert out.rows.element_type is pa.Table, label


def test_the_index_is_decoded_once_per_process(evalsets):
    data = evalsets.index.to_bytes()
    assert load_index(data) is load_index(bytes(data))
