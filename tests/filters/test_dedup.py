"""Exact deduplication (pipelines.filters.dedup): planted copies found, nothing else dropped."""
from __future__ import annotations

import json
import random

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.corpus import accounting
from pipelines.corpus.matching import match_forms
from pipelines.corpus.schema import make_row, row_arrow_schema
from pipelines.engine import text_key
from pipelines.engine.shards import ParquetShards, ShardingConfig
from pipelines.engine.write import WriteShards
from pipelines.filters.dedup import (
    KEY,
    DropDuplicates,
    drop_exact_duplicates,
    exact_keys,
    fast_match_forms,
    keyed_schema,
    letters_and_digits,
    mix64,
    text_keys,
    with_key,
)

SCHEMA = row_arrow_schema()


def row(dataset, anchor, positive, negative=None, *, record_id, source_file="train.jsonl"):
    return make_row(dataset, anchor, positive, negative, source_file=source_file, record_id=record_id,
                    licence="cc-by-sa-4.0")


def run_dedup(tmp_path, rows_by_dataset: dict, *, as_tables=(), shuffle_seed=None, bundle_rows=3,
              task_bytes=None, label="run"):
    """Run DropDuplicates on the given rows (of the datasets in ``as_tables`` as Arrow
    tables, the others as dicts), write each dataset with WriteShards, and return
    ``(rows per dataset, rejects, counters, shard bytes per dataset)``."""
    out = tmp_path / label
    options = PipelineOptions([f"--scratch_dir={out / 'scratch'}"])
    pipeline = beam.Pipeline(runner="FnApiRunner", options=options)
    inputs = {}
    for dataset, rows in rows_by_dataset.items():
        rows = list(rows)
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(rows)
        if dataset in as_tables:
            elements = [pa.Table.from_pylist(rows[i:i + bundle_rows], schema=SCHEMA)
                        for i in range(0, len(rows), bundle_rows)]
        else:
            elements = rows
        inputs[dataset] = pipeline | f"In{dataset}" >> beam.Create(elements, reshuffle=False)
    datasets = list(rows_by_dataset)
    deduped = inputs | DropDuplicates(datasets, task_bytes=task_bytes)
    config = ShardingConfig(target_shard_bytes=1 << 20)
    for dataset in datasets:
        deduped.rows[dataset] | f"Write{dataset}" >> WriteShards(
            str(out / dataset), dataset, ParquetShards(config), config, spill_dir=str(out / "spill" / dataset),
            subset_field=None)
    (deduped.rejects | beam.Map(lambda r: json.dumps(r, sort_keys=True))
     | beam.io.WriteToText(str(out / "rejects"), shard_name_template=""))
    result = pipeline.run()
    result.wait_until_finish()
    written = {d: [r for path in sorted((out / d).glob("*.parquet")) for r in pq.read_table(path).to_pylist()]
               for d in datasets}
    shard_bytes = {d: [path.read_bytes() for path in sorted((out / d).glob("*.parquet"))] for d in datasets}
    rejects = [json.loads(line) for line in (out / "rejects").read_text().splitlines()]
    counters = {(m.key.metric.namespace, m.key.metric.name): m.committed
                for m in result.metrics().query(MetricsFilter())["counters"]}
    return written, rejects, counters, shard_bytes


QUORA, SQUAD, MSMARCO = "quora_triplets", "squad", "msmarco_triplets"


def planted_rows():
    """Rows of three datasets with planted copies (differing in case, punctuation and
    spaces) within and across datasets, and MS MARCO triplets sharing their query and
    relevant passage with different negatives."""
    squad = [row(SQUAD, f"What is item {n}?", f"Item {n} is a thing.", record_id=f"q{n}") for n in range(20)]
    squad += [
        row(SQUAD, "WHAT is item 3", "item 3 -- is a thing", record_id="q3-copy"),   # of q3
        row(SQUAD, "What's the capital of France?", "Paris.", record_id="a1"),
    ]
    msmarco = [row(MSMARCO, "capital of france", "Paris is the capital.", f"Negative passage {n}.",
                   record_id=f"1/2/{n}") for n in range(6)]
    msmarco += [row(MSMARCO, "capital of france", "paris is the CAPITAL", "negative passage 4",
                    record_id="1/2/4b")]  # a copy of 1/2/4
    quora = [row(QUORA, "Who wrote Hamlet?", "Who is the author of Hamlet?", "Who wrote Macbeth?",
                 record_id="t1"),
             row(QUORA, "who wrote hamlet", "who is the author of hamlet", "who wrote macbeth!",
                 record_id="t0")]  # a copy within: t0 < t1, so t0 is kept
    # Across datasets: squad's pair again in quora_triplets, as a pair (no negative); kept
    # in quora_triplets, which comes before squad in the registry.
    quora += [row(QUORA, "what s the capital of france", "paris", record_id="t9")]
    return {SQUAD: squad, MSMARCO: msmarco, QUORA: quora}


def test_the_key_mixes_the_text_keys_of_the_letters_and_digits_of_the_three_texts():
    table = pa.Table.from_pylist([row(SQUAD, "What's up?", "Not much.", record_id="1"),
                                  row(MSMARCO, "A", "B!", "C.", record_id="2")], schema=SCHEMA)

    def key(*texts):
        value = np.zeros(1, np.uint64)
        with np.errstate(over="ignore"):
            for text in texts:
                value = mix64(value * np.uint64(0x9E3779B97F4A7C15) + np.array([text_key(text)]).view(np.uint64))
        return int(value.view(np.int64)[0])
    assert exact_keys(table).tolist() == [key("whatsup", "notmuch", "\x00"), key("a", "b", "c")]
    # Runs of equal texts (MS MARCO's rows of one query) are keyed once, with the same keys.
    rows = [row(MSMARCO, "Q", "P", f"N{n % 3}", record_id=str(n)) for n in range(12)]
    rows += [row(MSMARCO, "Q2", "P", "N0", record_id="x"), row(MSMARCO, "Q", "P!", "n0", record_id="y")]
    together = exact_keys(pa.Table.from_pylist(rows, schema=SCHEMA)).tolist()
    assert together == [exact_keys(pa.Table.from_pylist([r], schema=SCHEMA))[0] for r in rows]
    assert together[0] == together[3] == together[-1] != together[1] != together[-2]
    texts = pa.array(["", "é", "x" * 300, "a b"])
    assert text_keys(texts.slice(1)).tolist() == [text_key(t) for t in texts.to_pylist()[1:]]
    assert text_keys(pa.chunked_array([texts[:2], texts[2:]])).tolist() == [text_key(t) for t in texts.to_pylist()]


TRICKY = ["What's the capital of France?", "", None, "DON’T stop — now…", "Straße ÉCOLE naïve", "x\u0301y",
          "日本語の文章、です。", "emoji 😀 ok", "İstanbul \u212a", "a\u00b2b\u00b5c\u00aad", "  -- ", "ǅ", "\u2070\u2071x"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(), st.sampled_from(TRICKY)), max_size=20), st.integers(0, 3))
def test_match_forms_with_numpy_are_those_of_the_corpus_rule(texts, start):
    column = pa.array(TRICKY + texts, pa.string()).slice(start)
    expected = match_forms(column)
    chunked = pa.chunked_array([column.slice(0, 5), column.slice(5)])
    for given_column in (column, chunked):
        assert fast_match_forms(given_column).to_pylist() == expected.to_pylist()
        assert letters_and_digits(given_column).to_pylist() == pc.replace_substring(expected, " ", "").to_pylist()


def test_planted_copies_are_dropped_and_nothing_else(tmp_path):
    rows = planted_rows()
    written, rejects, counters, _ = run_dedup(tmp_path, rows, as_tables=(MSMARCO,))
    dropped = {(r["dataset"], r["record_id"]): r for r in rejects}
    france_keeper, france_copy = (QUORA, "t9"), (SQUAD, "a1")
    assert set(dropped) == {(SQUAD, "q3-copy"), (MSMARCO, "1/2/4b"), (QUORA, "t1"), france_copy}
    assert all(r["reason"] == "duplicate" for r in rejects)
    assert dropped[(SQUAD, "q3-copy")]["detail"] == "exact duplicate of squad train.jsonl record q3"
    assert dropped[(MSMARCO, "1/2/4b")]["detail"].endswith("msmarco_triplets train.jsonl record 1/2/4")
    assert dropped[(QUORA, "t1")]["detail"].endswith("quora_triplets train.jsonl record t0")
    assert dropped[france_copy]["detail"].endswith(f"{france_keeper[0]} train.jsonl record {france_keeper[1]}")
    assert json.loads(dropped[(QUORA, "t1")]["excerpt"])["anchor"] == "Who wrote Hamlet?"
    # Every other row is written, untouched; MS MARCO's six negatives all kept.
    for dataset, dataset_rows in rows.items():
        expected = sorted((r for r in dataset_rows if (dataset, r["record_id"]) not in dropped),
                          key=lambda r: r["record_id"])
        assert sorted(written[dataset], key=lambda r: r["record_id"]) == expected
    assert len(written[MSMARCO]) == 6
    # Counters: rows dropped per dataset (the accounting), by the dedup, and of which dataset.
    for dataset in rows:
        n = sum(1 for d, _ in dropped if d == dataset)
        assert counters.get((accounting.NAMESPACE + dataset, accounting.ROWS_DROPPED), 0) == n
        assert len(rows[dataset]) == len(written[dataset]) + n  # the rows equation, per dataset
        assert counters.get((f"dedup.{dataset}", "exact"), 0) == n
        assert counters.get((f"rejected.{dataset}", "duplicate"), 0) == n
    assert counters[(f"dedup.{france_copy[0]}", f"exact_of:{france_keeper[0]}")] == 1
    assert not any(name.startswith("exact_of:") for ns, name in counters if ns != f"dedup.{france_copy[0]}")


def test_output_is_byte_identical_whatever_the_order_and_bundles(tmp_path):
    rows = planted_rows()
    rows[SQUAD] = rows[SQUAD] + [row(SQUAD, f"what is item {n}", f"item {n} is a thing", record_id=f"z{n}")
                                 for n in range(20)]
    first = run_dedup(tmp_path, rows, as_tables=(MSMARCO,), label="a")
    again = run_dedup(tmp_path, rows, as_tables=(MSMARCO, SQUAD), shuffle_seed=3, bundle_rows=2,
                      task_bytes=1 << 10, label="b")
    assert first[3] == again[3] and all(first[3].values())
    assert sorted(map(json.dumps, first[1])) == sorted(map(json.dumps, again[1]))
    assert len(first[1]) == 4 + 20


def _task(rows, keys):
    table = with_key(pa.Table.from_pylist(rows, schema=SCHEMA), SCHEMA, keys=lambda _t: np.asarray(keys))
    out = list(drop_exact_duplicates({"squad": table, "quora_triplets": table.slice(0, 0)}))
    kept = [r for t in out if isinstance(t, pa.Table) for r in t.to_pylist()]
    rejects = [o.value for o in out if not isinstance(o, pa.Table)]
    return kept, rejects


def test_a_hash_collision_drops_nothing():
    rows = [row(SQUAD, "one question", "one answer", record_id="1"),
            row(SQUAD, "another question", "another answer", record_id="2"),
            row(SQUAD, "One question!", "One answer.", record_id="3")]
    kept, rejects = _task(rows, [7, 7, 7])  # every row forced to the same key
    assert sorted(r["record_id"] for r in kept) == ["1", "2"]
    assert [(r["record_id"], r["detail"]) for r in rejects] == [
        ("3", "exact duplicate of squad train.jsonl record 1")]
    assert all(set(r) == set(SCHEMA.names) for r in kept)
    kept, rejects = _task(rows[:2], [7, 7])
    assert len(kept) == 2 and not rejects


def test_the_keeper_is_the_smallest_by_registry_place_file_id_and_row():
    rows = [row(SQUAD, "q", "a", record_id="9", source_file="b.jsonl"),
            row(SQUAD, "Q", "A", record_id="5", source_file="b.jsonl"),
            row(SQUAD, "q!", "a!", record_id="7", source_file="a.jsonl"),
            row(QUORA, "q", "a", record_id="8", source_file="z.jsonl")]
    kept, rejects = _task(rows, [1, 1, 1, 1])
    assert [(r["record_id"], r["dataset"]) for r in kept] == [("8", QUORA)]
    kept, rejects = _task(rows[:3], [1, 1, 1])
    assert [(r["record_id"], r["source_file"]) for r in kept] == [("7", "a.jsonl")]
    assert sorted(r["detail"] for r in rejects) == ["exact duplicate of squad a.jsonl record 7"] * 2
    # Two copies identical in everything but a text's spelling: the smaller row is kept.
    twins = [row(SQUAD, "Q?", "a", record_id="1"), row(SQUAD, "Q", "a", record_id="1")]
    kept, _ = _task(twins, [1, 1])
    assert [r["anchor"] for r in kept] == ["Q"]


def test_an_empty_input_gives_empty_outputs(tmp_path):
    written, rejects, _, _ = run_dedup(tmp_path, {SQUAD: [], QUORA: [row(QUORA, "a", "b", "c", record_id="1")]})
    assert written[SQUAD] == [] and len(written[QUORA]) == 1 and rejects == []

    assert keyed_schema(SCHEMA).names == [*SCHEMA.names, KEY]
