"""Near-duplicate anchors (pipelines.filters.near_dedup): paraphrases found, the rest kept."""
from __future__ import annotations

import json
import random
from itertools import pairwise

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from datasketch import MinHash

from pipelines.corpus import accounting
from pipelines.corpus.matching import match_forms
from pipelines.corpus.schema import make_row, row_arrow_schema
from pipelines.engine import text_key
from pipelines.engine.shards import ParquetShards, ShardingConfig
from pipelines.engine.write import WriteShards
from pipelines.filters.dedup import KEY, with_key
from pipelines.filters.near_dedup import (
    EDGES,
    MAX_BUCKET,
    DropNearDuplicates,
    anchor_keys,
    anchor_units,
    candidate_ends,
    choose_keepers,
    shingles,
    signatures,
)

SCHEMA = row_arrow_schema()
DATASET = "squad"
VOCABULARY = [f"w{n}" for n in range(5000)]


def row(anchor, positive, *, record_id, source_file="train.jsonl"):
    return make_row(DATASET, anchor, positive, source_file=source_file, record_id=record_id, licence="cc-by-sa-4.0")


def jaccard(a: str, b: str) -> float:
    def shingle_set(text):
        words = match_forms(pa.array([text]))[0].as_py().split(" ")
        return set(words) | {f"{x} {y}" for x, y in pairwise(words)}
    first, second = shingle_set(a), shingle_set(b)
    return len(first & second) / len(first | second)


def corpus():
    """Distinct anchors of 12-30 random words (the first three of 30), and planted
    near-duplicates of some."""
    rng = random.Random(5)
    anchors = [" ".join(rng.sample(VOCABULARY, 30 if n < 3 else rng.randint(12, 30))) for n in range(60)]
    rows = [row(anchor.capitalize() + "?", f"answer {n}", record_id=f"{n:03d}") for n, anchor in enumerate(anchors)]
    words = anchors[0].split(" ")
    one_word = " ".join(words[:5] + ["changed"] + words[6:])             # of 000
    words = anchors[1].split(" ")
    two_words = " ".join(["new"] + words[1:-1] + ["words"])              # of 001
    words = anchors[2].split(" ")
    half = " ".join(words[: len(words) // 2] + rng.sample(VOCABULARY, len(words) // 2))  # not one of 002
    planted = [
        row(one_word.upper(), "a paraphrase's answer", record_id="100"),
        row(one_word + "!", "the same anchor's second row", record_id="101"),
        row(two_words, "another answer", record_id="102"),
        row(half, "a different question", record_id="103"),
        # 003's anchor again, spelled differently: the same unit, kept with it.
        row(anchors[3].upper() + " ?!", "003's anchor again", record_id="104"),
    ]
    assert jaccard(anchors[0], one_word) > 0.85 and jaccard(anchors[1], two_words) > 0.85
    assert jaccard(anchors[2], half) < 0.5
    return rows + planted


def run_near(tmp_path, rows, *, as_tables=False, shuffle_seed=None, bundle_rows=7, label="run"):
    out = tmp_path / label
    rows = list(rows)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(rows)
    elements = ([pa.Table.from_pylist(rows[i:i + bundle_rows], schema=SCHEMA) for i in range(0, len(rows), bundle_rows)]
                if as_tables else rows)
    pipeline = beam.Pipeline(runner="FnApiRunner", options=PipelineOptions([f"--scratch_dir={out / 'scratch'}"]))
    result = pipeline | beam.Create(elements, reshuffle=False) | DropNearDuplicates(DATASET)
    config = ShardingConfig(target_shard_bytes=1 << 20)
    result.rows | WriteShards(str(out / DATASET), DATASET, ParquetShards(config), config,
                                 spill_dir=str(out / "spill"), subset_field=None)
    (result.rejects | beam.Map(lambda r: json.dumps(r, sort_keys=True))
     | beam.io.WriteToText(str(out / "rejects"), shard_name_template=""))
    run = pipeline.run()
    run.wait_until_finish()
    shards = sorted((out / DATASET).glob("*.parquet"))
    written = [r for path in shards for r in pq.read_table(path).to_pylist()]
    rejects = [json.loads(line) for line in (out / "rejects").read_text().splitlines()]
    counters = {(m.key.metric.namespace, m.key.metric.name): m.committed
                for m in run.metrics().query(MetricsFilter())["counters"]}
    return written, rejects, counters, [path.read_bytes() for path in shards]


def test_paraphrased_anchors_are_dropped_with_all_their_rows_and_nothing_else(tmp_path):
    rows = corpus()
    written, rejects, counters, _ = run_near(tmp_path, rows)
    dropped = {r["record_id"]: r for r in rejects}
    assert set(dropped) == {"100", "101", "102"}
    assert all(r["reason"] == "duplicate" and r["dataset"] == DATASET for r in rejects)
    assert dropped["100"]["detail"].startswith("near duplicate (estimated similarity 0.")
    assert dropped["100"]["detail"].endswith("of the anchor of squad train.jsonl record 000")
    assert dropped["101"]["detail"].endswith("record 000") and dropped["102"]["detail"].endswith("record 001")
    assert json.loads(dropped["101"]["excerpt"])["positive"] == "the same anchor's second row"
    similarity = float(dropped["100"]["detail"].split("similarity ")[1].split(")")[0])
    assert similarity >= 0.8
    assert sorted(r["record_id"] for r in written) == sorted(r["record_id"] for r in rows if r["record_id"] not in dropped)
    assert written and all(set(r) == set(SCHEMA.names) for r in written)
    assert counters[(f"dedup.{DATASET}", "near")] == 3
    assert counters[(accounting.NAMESPACE + DATASET, accounting.ROWS_DROPPED)] == 3
    assert len(rows) == len(written) + 3  # the rows equation
    assert counters[(f"rejected.{DATASET}", "duplicate")] == 3


def test_output_is_byte_identical_whatever_the_order_and_bundles(tmp_path):
    rows = corpus()
    first = run_near(tmp_path, rows, label="a")
    again = run_near(tmp_path, rows, as_tables=True, shuffle_seed=11, bundle_rows=4, label="b")
    assert first[3] == again[3] and first[3]
    assert sorted(map(json.dumps, first[1])) == sorted(map(json.dumps, again[1]))


def test_the_kept_anchor_is_the_one_with_the_smallest_row():
    rng = random.Random(1)
    base = " ".join(rng.sample(VOCABULARY, 30))
    near = " ".join(base.split(" ")[:-1] + ["other"])
    for base_file, near_file in (("a.jsonl", "b.jsonl"), ("b.jsonl", "a.jsonl")):
        rows = [row(base, "x", record_id="1", source_file=base_file),
                row(near, "y", record_id="1", source_file=near_file),
                row(near, "z", record_id="0", source_file="c.jsonl")]
        (dropped,) = choose_keepers(_verified_pairs(rows))
        # The anchor whose smallest (source file, record id) is ("a.jsonl", "1") stays.
        lost = near if base_file == "a.jsonl" else base
        assert dropped[KEY].to_pylist() == [text_key(match_forms(pa.array([lost]))[0].as_py())]
        assert dropped["kept_source_file"].to_pylist() == ["a.jsonl"]
        assert dropped["kept_record_id"].to_pylist() == ["1"]


def _verified_pairs(rows) -> list[pa.Table]:
    """The verified pairs of ``rows``, found without the pipeline: their units, every two
    compared by signature."""
    table = with_key(pa.Table.from_pylist(rows, schema=SCHEMA), SCHEMA, keys=anchor_keys)
    units = next(t for t in anchor_units({"rows": table}) if t.schema.names[0] == "unit").to_pylist()
    values = [np.frombuffer(u["signature"], np.uint32) for u in units]
    edges = []
    for i in range(len(units)):
        for j in range(i + 1, len(units)):
            agree = float((values[i] == values[j]).mean())
            if agree >= 0.8:
                a, b = sorted((units[i], units[j]), key=lambda u: u["unit"])
                edges.append({"a": a["unit"], "b": b["unit"], "similarity": agree,
                              "a_source_file": a["source_file"], "a_record_id": a["record_id"],
                              "b_source_file": b["source_file"], "b_record_id": b["record_id"]})
    return [pa.Table.from_pylist(edges, schema=EDGES)]


def test_a_chain_keeps_both_ends_when_only_the_middle_is_dropped():
    # a ~ b and b ~ c, a and c too far apart: b goes (as a's duplicate), c stays.
    edges = pa.Table.from_pylist([
        {"a": 1, "b": 2, "similarity": 0.9, "a_source_file": "f", "a_record_id": "1", "b_source_file": "f",
         "b_record_id": "2"},
        {"a": 2, "b": 3, "similarity": 0.85, "a_source_file": "f", "a_record_id": "2", "b_source_file": "f",
         "b_record_id": "3"}], schema=EDGES)
    (dropped,) = choose_keepers([edges])
    assert dropped.to_pylist() == [{KEY: 2, "kept_source_file": "f", "kept_record_id": "1", "similarity": 0.9}]
    assert choose_keepers([]) == []


def test_signatures_are_datasketchs_minhash():
    hashes = np.random.default_rng(3).integers(0, 1 << 32, 500, dtype=np.uint64).astype(np.uint32)
    offsets = np.array([0, 0, 1, 40, 41, 300, 500])
    mine = signatures(hashes, offsets, chunk=64)
    for n in range(len(offsets) - 1):
        reference = MinHash(num_perm=128, seed=1, hashfunc=lambda value: value)
        values = hashes[offsets[n]:offsets[n + 1]].tolist()
        if values:
            reference.update_batch(values)
        assert np.array_equal(mine[n], reference.hashvalues)


def test_shingles_are_the_words_and_word_pairs():
    forms = pa.array(["what is the capital of france", "", "one", "a b a"])
    hashes, offsets = shingles(forms)
    words = [text_key(w) & 0xFFFFFFFF for w in ("what", "is", "the", "capital", "of", "france")]
    assert offsets.tolist() == [0, 11, 11, 12, 17]
    assert hashes[:6].tolist() == words
    assert hashes[11] == text_key("one") & 0xFFFFFFFF
    assert hashes[12] == hashes[14] and hashes[15] != hashes[16]  # "a" twice; "a b" and "b a" differ


def test_an_anchor_key_shared_by_two_forms_is_left_out():
    rows = [row("one question here", "x", record_id="1"), row("a quite different one", "y", record_id="2"),
            row("one question here", "z", record_id="3")]
    table = with_key(pa.Table.from_pylist(rows, schema=SCHEMA), SCHEMA, keys=lambda t: np.array([5, 5, 5]))
    assert list(anchor_units({"rows": table})) == []
    table = with_key(pa.Table.from_pylist(rows, schema=SCHEMA), SCHEMA, keys=lambda t: np.array([5, 6, 5]))
    units = next(anchor_units({"rows": table}))
    assert units["record_id"].to_pylist() == ["1", "2"]


def test_a_bucket_pairs_all_its_anchors_or_beyond_a_size_only_its_first():
    small = [(7, unit) for unit in (30, 10, 20)]
    big = [(9, unit) for unit in range(100, 100 + MAX_BUCKET + 1)]
    lonely = [(11, 5)]
    table = pa.Table.from_pylist([{"band": band, "unit": unit} for band, unit in small + big + lonely + small])
    (ends,) = candidate_ends((0, [table.slice(0, 10), table.slice(10)]))
    pairs = sorted({(a, b) for a, b in zip(ends["a"].to_pylist(), ends["b"].to_pylist())})
    assert pairs == [(10, 20), (10, 30), (20, 30)] + [(100, unit) for unit in range(101, 100 + MAX_BUCKET + 1)]
    assert ends.num_rows == 2 * len(pairs)  # once per end
    assert sorted(ends["end"].to_pylist()) == sorted([a for a, _ in pairs] + [b for _, b in pairs])


def test_a_dataset_without_near_duplicates_keeps_every_row(tmp_path):
    rows = [row(f"question number {n} about topic {n * 7}", "an answer", record_id=str(n)) for n in range(6)]
    written, rejects, counters, _ = run_near(tmp_path, rows, as_tables=True)
    assert sorted(r["record_id"] for r in written) == [str(n) for n in range(6)]
    assert rejects == [] and not counters.get((f"dedup.{DATASET}", "near"))
