"""The mixture reader on the real sample corpus: the mix against the weights (chi-square),
one entry per batch, no duplicate texts, reproducible and resumable, streaming; and
sentence-transformers training on exactly those batches."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.stats import chisquare

from pipelines import training
from tests.sample_corpus import sample_corpus

REPO = Path(__file__).resolve().parent.parent
# Significance level of the mix tests: a correct reader fails one in a thousand seeds.
ALPHA = 1e-3


@pytest.fixture(scope="module")
def corpus() -> Path:
    return sample_corpus()


def _drawn_counts(batches, entries) -> np.ndarray:
    counts = Counter(batch.entry for batch in batches)
    return np.array([counts[entry.name] for entry in entries])


def _expected(entries, total: int, weights=None) -> np.ndarray:
    weights = np.array(weights if weights is not None else [e.weight for e in entries], dtype=float)
    return total * weights / weights.sum()


def test_the_mix_drawn_over_many_batches_follows_the_weights(corpus):
    reader = training.MixtureReader(str(corpus), batch_size=2, seed=0, max_steps=6000)
    batches = list(reader)
    observed = _drawn_counts(batches, reader.entries)
    assert observed.sum() == 6000
    assert _expected(reader.entries, 6000).min() >= 5  # the chi-square approximation holds
    assert chisquare(observed, _expected(reader.entries, 6000)).pvalue > ALPHA


def test_the_same_test_rejects_a_mix_with_other_weights(corpus):
    # The check has power: the weights' draw is far from a uniform one.
    reader = training.MixtureReader(str(corpus), batch_size=2, seed=0, max_steps=6000)
    observed = _drawn_counts(reader, reader.entries)
    uniform = _expected(reader.entries, 6000, [1] * len(reader.entries))
    assert chisquare(observed, uniform).pvalue < 1e-6


def test_the_schedule_follows_the_weights_over_a_long_run(corpus):
    entries = training.MixtureReader(str(corpus), batch_size=2).entries
    schedule = training.Schedule([e.weight for e in entries], seed=7)
    steps = 200_000
    observed = np.bincount(schedule.entries(0, steps), minlength=len(entries))
    assert chisquare(observed, _expected(entries, steps)).pvalue > ALPHA
    assert (schedule.counts_before(steps) == observed).all()


def test_entries_without_weight_or_rows_are_never_drawn(corpus):
    reader = training.MixtureReader(str(corpus), batch_size=2, seed=0, max_steps=3000)
    names = {batch.entry for batch in reader}
    assert "yahoo_answers_question_answer" not in names  # weight 0 in the reference mix
    assert names == {e.name for e in reader.entries}


def _shard_rows(entry: training.MixEntry) -> list[dict]:
    return [row for path in entry.files for row in pq.read_table(path, use_threads=False).to_pylist()]


def test_each_batch_is_one_entry_with_distinct_texts_and_the_right_columns(corpus):
    reader = training.MixtureReader(str(corpus), batch_size=4, seed=1, max_steps=1500)
    rows_of = {entry.name: _shard_rows(entry) for entry in reader.entries}
    entry_of = {entry.name: entry for entry in reader.entries}
    for batch in reader:
        entry = entry_of[batch.entry]
        texts = [text for example in batch.examples() for text in example]
        assert len(texts) == len(set(texts)), f"duplicate text in step {batch.step}"
        assert batch.columns == entry.columns
        assert (batch.negative is None) == (entry.columns == 2)
        assert all(len(example) == entry.columns for example in batch.examples())
        entry_texts = [r[c] for r in rows_of[batch.entry] for c in entry.text_columns]
        if len(set(entry_texts)) == len(entry_texts):
            assert len(batch) == min(4, len(rows_of[batch.entry]))  # nothing to skip: always full
        else:
            assert 1 <= len(batch) <= 4  # rows sharing a query (MS MARCO triplets) can cut it short
        for position, example in zip(batch.rows, batch.examples()):
            row = rows_of[batch.entry][position]
            assert row["dataset"] == entry.dataset
            assert tuple(row[c] for c in entry.text_columns) == example


def test_a_row_repeating_a_text_already_in_the_batch_is_left_out():
    rows = iter([(0, "q1", "a1"), (1, "q2", "a1"), (2, "q3", "q3"), (3, "q1", "a4"), (4, "q5", "a5")])
    batch = training.fill_batch(rows, batch_size=2, max_rows_examined=10)
    assert [row[0] for row in batch] == [0, 4]


def test_reproducible_with_a_seed_and_resumable_from_a_step(corpus):
    first = list(training.MixtureReader(str(corpus), batch_size=3, seed=5, max_steps=400))
    again = list(training.MixtureReader(str(corpus), batch_size=3, seed=5, max_steps=400))
    assert first == again
    resumed = list(training.MixtureReader(str(corpus), batch_size=3, seed=5, start_step=250, max_steps=400))
    assert resumed == first[250:]
    other_seed = list(training.MixtureReader(str(corpus), batch_size=3, seed=6, max_steps=400))
    assert [b.entry for b in other_seed] != [b.entry for b in first]


def _big_entry(tmp_path: Path, rows: int, row_group_rows: int) -> Path:
    """An output folder with one pair entry of ``rows`` rows in small row groups."""
    (tmp_path / "big").mkdir()
    table = pa.table({"anchor": [f"question {n}" for n in range(rows)],
                      "positive": [f"answer {n}" for n in range(rows)],
                      "negative": pa.nulls(rows, pa.string())})
    pq.write_table(table, tmp_path / "big" / "big-00000-of-00001.parquet", row_group_size=row_group_rows)
    (tmp_path / "data_config.json").write_text(json.dumps([{
        "name": "big", "dataset": "big", "columns": 2, "weight": 1, "lines": rows,
        "files": ["big/big-00000-of-00001.parquet"]}]))
    return tmp_path


def test_the_reader_streams_one_row_group_at_a_time(tmp_path, monkeypatch):
    output = _big_entry(tmp_path, rows=5000, row_group_rows=100)
    reads = []
    original = pq.ParquetFile.iter_batches

    def recording(self, *args, **kwargs):
        reads.append(kwargs.get("row_groups"))
        return original(self, *args, **kwargs)

    def whole_file(*args, **kwargs):
        raise AssertionError("the reader must not load a whole file")

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", recording)
    monkeypatch.setattr(pq, "read_table", whole_file)
    monkeypatch.setattr(pq.ParquetFile, "read", whole_file)
    reader = training.MixtureReader(str(output), batch_size=8, seed=0, max_steps=20, shuffle_buffer=50)
    batches = list(reader)
    assert len(batches) == 20 and all(len(b) == 8 for b in batches)
    assert reads and all(groups is not None and len(groups) == 1 for groups in reads)
    # 160 examples plus a 50-row shuffle buffer need at most 3 of the 50 row groups.
    assert len(reads) <= 3


def test_entry_dataset_has_the_columns_sentence_transformers_expects(corpus):
    pairs = training.entry_dataset(str(corpus), "squad", cache_dir=str(corpus.parent / "hf"))
    assert pairs.column_names == ["anchor", "positive"]
    assert len(pairs) == 4
    triplets = training.entry_dataset(str(corpus), "msmarco_triplets", streaming=True)
    first = next(iter(triplets))
    assert list(first) == ["anchor", "positive", "negative"] and all(first.values())


def test_the_trainer_gets_exactly_the_reader_batches(corpus):
    datasets = training.mixture_datasets(str(corpus), cache_dir=str(corpus.parent / "hf"))
    from torch.utils.data import ConcatDataset

    concatenated = ConcatDataset(list(datasets.values()))
    make = training.mixture_batch_sampler(str(corpus), steps=60, seed=2)
    sampler = make(concatenated, [_FakeBatchSampler(3)] * len(datasets))
    reader = training.MixtureReader(str(corpus), batch_size=3, seed=2, max_steps=60)
    trained = [[tuple(concatenated[i].values()) for i in indices] for indices in sampler]
    assert len(sampler) == 60
    assert trained == [batch.examples() for batch in reader]


class _FakeBatchSampler:
    """Stands in for the per-dataset samplers the trainer makes (only their size is read)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.drop_last = False


def test_the_example_trains_a_tiny_model_for_a_few_steps(corpus, tmp_path):
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "train_tiny_model.py"), str(corpus), "--steps", "6",
         "--batch-size", "4", "--save", str(tmp_path / "model")],
        capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Trained 6 steps" in result.stdout
    assert (tmp_path / "model" / "modules.json").is_file()
