"""Training from a build: the weighted mixture reader and sentence-transformers datasets.

The original ``multi-qa`` training drew every batch the same way, and
:class:`MixtureReader` does too:

* an entry of ``OUT/data_config.json`` (a dataset, or one StackExchange site) is chosen
  with probability proportional to its ``weight``;
* the whole batch comes from that one entry, so pair (2-column) and triplet (3-column)
  rows are never mixed in a batch;
* a row is left out of a batch when one of its texts is already in the batch (or
  appears twice in the row), so in-batch negatives are never copies of a positive;
* the draw is seeded: the same folder, batch size and seed give the same batches, and
  a reader started at step ``N`` yields exactly the batches ``N, N+1, ...`` of a reader
  started at 0.

Rows are streamed from the Parquet shards one record batch at a time: an entry is read
pass after pass (an *epoch*), its row groups in a seeded order that changes every epoch,
through a bounded shuffle buffer. Memory is bounded by the shuffle buffer and one record
batch per entry, never by an entry's size.

For sentence-transformers, :func:`entry_dataset` loads an entry's shards as a
``datasets.Dataset`` (or a streaming ``IterableDataset``) with the columns ``anchor``,
``positive`` and, for triplets, ``negative``, in that order; :func:`mixture_datasets`
gives every drawable entry as a ``DatasetDict`` and :func:`mixture_batch_sampler` makes
``SentenceTransformerTrainer`` train on exactly the batches of a :class:`MixtureReader`.
"""
from __future__ import annotations

import json
import random
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pyarrow.parquet as pq

from pipelines import extras
from pipelines.engine import files

DATA_CONFIG = "data_config.json"
TEXT_COLUMNS = ("anchor", "positive", "negative")
# Rows read from a shard at a time: bounds memory together with the shuffle buffer.
READ_BATCH_ROWS = 4096
# Dataset choices drawn per random-generator block; a step's choice depends only on the
# seed and its block, so a resumed reader finds it without replaying the steps before.
SCHEDULE_BLOCK_STEPS = 4096


@dataclass(frozen=True)
class MixEntry:
    """One entry of a build's training mix.

    Attributes:
        name: the entry's name in ``data_config.json`` (``dataset`` or ``dataset/site``).
        dataset: the dataset id.
        columns: 2 for (anchor, positive) pairs, 3 for (anchor, positive, negative).
        weight: the entry's weight in the mix.
        lines: rows the entry holds.
        files: its shard paths, in ``data_config.json`` order (row positions count
            through them in this order).
    """

    name: str
    dataset: str
    columns: int
    weight: float
    lines: int
    files: tuple[str, ...]

    @property
    def text_columns(self) -> list[str]:
        """The columns a training example of this entry has, in order."""
        return list(TEXT_COLUMNS[:self.columns])

    @property
    def drawable(self) -> bool:
        """Whether the mix can draw from this entry (it has rows and a weight)."""
        return self.weight > 0 and self.lines > 0


@dataclass(frozen=True)
class Batch:
    """One training batch, all from one entry.

    Attributes:
        step: the batch's step number (0 for the first batch of a run).
        entry: the name of the entry it was drawn from.
        dataset: that entry's dataset id.
        columns: 2 (pairs) or 3 (triplets).
        anchor, positive: the texts, one per example.
        negative: the hard negatives for a triplet entry, ``None`` for a pair entry.
        rows: each example's position in its entry (counted through the entry's shards
            in order), for finding the example again.
    """

    step: int
    entry: str
    dataset: str
    columns: int
    anchor: list[str]
    positive: list[str]
    negative: list[str] | None
    rows: list[int]

    def __len__(self) -> int:
        return len(self.anchor)

    def examples(self) -> list[tuple[str, ...]]:
        """The examples as tuples ``(anchor, positive[, negative])``."""
        columns = [self.anchor, self.positive] + ([self.negative] if self.negative is not None else [])
        return list(zip(*columns))


def read_mix(output: str, data_config: str | None = None) -> list[MixEntry]:
    """The training mix of a build.

    Args:
        output: the build's output folder (local, gs://, s3://); shard paths in the
            config are relative to it.
        data_config: path of the config to use instead of ``OUT/data_config.json`` (for
            a mix with other weights); its ``files`` are still relative to ``output``.
    Returns:
        The entries in config order.
    """
    output = output.rstrip("/")
    path = data_config or files.join(output, DATA_CONFIG)
    with files.open_raw(path) as stream:
        config = json.loads(stream.read().decode("utf-8"))
    return [MixEntry(name=item["name"], dataset=item["dataset"], columns=int(item["columns"]),
                     weight=float(item["weight"]), lines=int(item["lines"]),
                     files=tuple(files.join(output, name) for name in item.get("files", [])))
            for item in config]


def _stable_id(text: str) -> int:
    """A number for ``text`` that is the same in every process (unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


class Schedule:
    """Which entry each step draws: entry ``i`` with probability ``weights[i] / sum``.

    Args:
        weights: one non-negative weight per entry; entries of weight 0 are never drawn.
        seed: the run's seed.
    """

    def __init__(self, weights, seed: int):
        weights = np.asarray(weights, dtype=float)
        if weights.size == 0 or weights.sum() <= 0 or (weights < 0).any():
            raise ValueError("the mix needs at least one entry with a positive weight and no negative weights")
        self.probabilities = weights / weights.sum()
        self.seed = seed

    def _block(self, block: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, block])
        return rng.choice(len(self.probabilities), size=SCHEDULE_BLOCK_STEPS, p=self.probabilities)

    def entries(self, start: int, stop: int) -> np.ndarray:
        """The entry index drawn at each step in ``[start, stop)``."""
        if stop <= start:
            return np.zeros(0, dtype=int)
        first, last = start // SCHEDULE_BLOCK_STEPS, (stop - 1) // SCHEDULE_BLOCK_STEPS
        drawn = np.concatenate([self._block(b) for b in range(first, last + 1)])
        offset = first * SCHEDULE_BLOCK_STEPS
        return drawn[start - offset:stop - offset]

    def counts_before(self, step: int) -> np.ndarray:
        """How many of the steps before ``step`` drew each entry."""
        counts = np.zeros(len(self.probabilities), dtype=int)
        for block_start in range(0, step, SCHEDULE_BLOCK_STEPS):
            block_stop = min(step, block_start + SCHEDULE_BLOCK_STEPS)
            counts += np.bincount(self.entries(block_start, block_stop), minlength=len(counts))
        return counts


@dataclass(frozen=True)
class _RowGroup:
    path: str
    index: int
    first_row: int


def _row_groups(entry: MixEntry) -> list[_RowGroup]:
    """Every row group of the entry's shards with the entry position of its first row
    (reads the Parquet footers only)."""
    groups, position = [], 0
    for path in entry.files:
        with files.open_raw(path) as stream:
            metadata = pq.ParquetFile(stream).metadata
        for index in range(metadata.num_row_groups):
            groups.append(_RowGroup(path, index, position))
            position += metadata.row_group(index).num_rows
    return groups


def _read_row_group(group: _RowGroup, columns: list[str]) -> Iterator[tuple]:
    """``(position, texts...)`` of every row of one row group, a record batch at a time."""
    with files.open_raw(group.path) as stream:
        shard = pq.ParquetFile(stream)
        position = group.first_row
        # No pyarrow thread pool (see pipelines.corpus.verify): one row group at a time anyway.
        for record_batch in shard.iter_batches(batch_size=READ_BATCH_ROWS, row_groups=[group.index],
                                               columns=columns, use_threads=False):
            texts = [record_batch.column(name).to_pylist() for name in columns]
            for row in zip(*texts):
                yield (position, *row)
                position += 1


class EntryStream:
    """An endless stream of one entry's rows, epoch after epoch.

    Each epoch reads every row group once, in an order drawn from ``(seed, entry,
    epoch)``, and passes the rows through a shuffle buffer of ``shuffle_buffer`` rows.

    Args:
        entry: the mix entry to read.
        seed: the run's seed.
        shuffle_buffer: rows held for shuffling (1 reads rows in stored order).
    """

    def __init__(self, entry: MixEntry, seed: int, shuffle_buffer: int):
        self.entry = entry
        self.seed = seed
        self.shuffle_buffer = max(1, shuffle_buffer)
        self._groups = _row_groups(entry)
        self._rows = self._endless()

    def __iter__(self):
        return self

    def __next__(self) -> tuple:
        return next(self._rows)

    def _endless(self) -> Iterator[tuple]:
        epoch = 0
        while True:
            yield from self._epoch(epoch)
            epoch += 1

    def _epoch(self, epoch: int) -> Iterator[tuple]:
        rng = random.Random(f"{self.seed}/{self.entry.name}/{epoch}")
        groups = list(self._groups)
        rng.shuffle(groups)
        buffer: list[tuple] = []
        for group in groups:
            for row in _read_row_group(group, self.entry.text_columns):
                if len(buffer) < self.shuffle_buffer:
                    buffer.append(row)
                    continue
                # Swap the new row in for a random held one and emit that one.
                slot = rng.randrange(len(buffer))
                buffer[slot], row = row, buffer[slot]
                yield row
        rng.shuffle(buffer)
        yield from buffer


def _row_texts(row: tuple) -> tuple[str, ...]:
    """The texts of a streamed row ``(position, anchor, positive[, negative])``."""
    return row[1:]


def fill_batch(rows: Iterator[tuple], batch_size: int, max_rows_examined: int) -> list[tuple]:
    """Take rows from ``rows`` until ``batch_size`` rows whose texts are all distinct.

    A row is skipped (and consumed) when one of its texts is already in the batch or
    appears twice in the row. An entry with fewer distinct rows than ``batch_size`` would
    never fill a batch, so at most ``max_rows_examined`` rows are looked at and the batch
    may come back short.

    Args:
        rows: stream of ``(position, anchor, positive[, negative])``.
        batch_size: examples wanted.
        max_rows_examined: rows looked at before giving up on filling the batch.
    """
    batch: list[tuple] = []
    seen: set[str] = set()
    for _ in range(max_rows_examined):
        row = next(rows)
        texts = _row_texts(row)
        if len(set(texts)) != len(texts) or seen.intersection(texts):
            continue
        seen.update(texts)
        batch.append(row)
        if len(batch) == batch_size:
            break
    return batch


class MixtureReader:
    """Training batches drawn from a build's mix the way the original training drew them.

    Iterating yields :class:`Batch` objects for steps ``start_step, start_step + 1, ...``,
    without end unless ``max_steps`` is given.

    Args:
        output: the build's output folder (local, gs://, s3://).
        batch_size: examples per batch.
        seed: seed of the dataset choice and of the row order; the same seed gives the
            same batches.
        start_step: the first step to yield (to resume a run). The dataset choices of
            the steps before are recomputed from the seed, and each entry's stream is
            advanced past the rows those steps took (read, not yielded).
        max_steps: stop before this step number; ``None`` for an endless reader.
        shuffle_buffer: rows per entry held for shuffling.
        data_config: path of a config to use instead of ``OUT/data_config.json``.
        entries: names of the entries to draw from (default: every entry with rows and
            a positive weight).
    """

    def __init__(self, output: str, batch_size: int, *, seed: int = 0, start_step: int = 0,
                 max_steps: int | None = None, shuffle_buffer: int = 10_000,
                 data_config: str | None = None, entries: list[str] | None = None):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        mix = read_mix(output, data_config)
        known = {entry.name for entry in mix}
        unknown = sorted(set(entries or ()) - known)
        if unknown:
            raise ValueError(f"not in the mix: {', '.join(unknown)}")
        self.entries = [entry for entry in mix
                        if entry.drawable and (entries is None or entry.name in entries)]
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.max_steps = max_steps
        self.shuffle_buffer = shuffle_buffer
        self.schedule = Schedule([entry.weight for entry in self.entries], seed)

    def _streams(self) -> list[EntryStream]:
        return [EntryStream(entry, _stable_id(f"{self.seed}/{entry.name}"), self.shuffle_buffer)
                for entry in self.entries]

    def _next_rows(self, stream: EntryStream) -> list[tuple]:
        # Two passes' worth of rows always holds one whole epoch, even when the batch
        # started near an epoch's end: a short batch means the entry has no more rows
        # whose texts are new to it.
        return fill_batch(stream, self.batch_size, max(self.batch_size, 2 * stream.entry.lines))

    def _fast_forward(self, streams: list[EntryStream]) -> None:
        """Advance each entry's stream past the batches drawn before ``start_step``."""
        for stream, count in zip(streams, self.schedule.counts_before(self.start_step)):
            for _ in range(int(count)):
                self._next_rows(stream)

    def _batch(self, step: int, stream: EntryStream) -> Batch:
        rows = self._next_rows(stream)
        entry = stream.entry
        columns = list(zip(*rows))
        return Batch(step=step, entry=entry.name, dataset=entry.dataset, columns=entry.columns,
                     anchor=list(columns[1]), positive=list(columns[2]),
                     negative=list(columns[3]) if entry.columns == 3 else None,
                     rows=list(columns[0]))

    def __iter__(self) -> Iterator[Batch]:
        streams = self._streams()
        self._fast_forward(streams)
        step = self.start_step
        while self.max_steps is None or step < self.max_steps:
            stop = step + SCHEDULE_BLOCK_STEPS
            if self.max_steps is not None:
                stop = min(stop, self.max_steps)
            for offset, index in enumerate(self.schedule.entries(step, stop)):
                yield self._batch(step + offset, streams[index])
            step = stop


# -- datasets and sentence-transformers ---------------------------------------------------

def entry_dataset(output: str, entry: str | MixEntry, *, streaming: bool = False,
                  cache_dir: str | None = None):
    """One mix entry's shards as a Hugging Face dataset of training examples.

    Args:
        output: the build's output folder.
        entry: the entry's name in ``data_config.json`` (or the :class:`MixEntry`).
        streaming: return an ``IterableDataset`` that reads the shards as it goes,
            instead of a ``Dataset`` (which converts the shards once into memory-mapped
            Arrow files under ``cache_dir``).
        cache_dir: where a ``Dataset`` keeps its Arrow files (default: the
            ``datasets`` cache).
    Returns:
        A dataset with the columns ``anchor``, ``positive`` (and ``negative`` for a
        triplet entry), in that order, rows in entry order: the input
        ``SentenceTransformerTrainer`` expects for ``MultipleNegativesRankingLoss``.
    """
    import datasets

    if isinstance(entry, str):
        entry = _entry_by_name(read_mix(output), entry)
    loaded = datasets.load_dataset("parquet", data_files={"train": list(entry.files)}, split="train",
                                   streaming=streaming, cache_dir=cache_dir)
    return loaded.select_columns(entry.text_columns)


def _entry_by_name(mix: list[MixEntry], name: str) -> MixEntry:
    for entry in mix:
        if entry.name == name:
            return entry
    raise ValueError(f"{name!r} is not in the mix; entries: {', '.join(e.name for e in mix)}")


def mixture_datasets(output: str, *, entries: list[str] | None = None, cache_dir: str | None = None):
    """Every drawable entry of the mix as a ``datasets.DatasetDict`` keyed by entry name,
    in the order a :class:`MixtureReader` with the same ``entries`` draws from.

    Args:
        output: the build's output folder.
        entries: entry names to include (default: every entry with rows and a weight).
        cache_dir: where the Arrow files of the datasets are kept.
    """
    import datasets

    mix = [entry for entry in read_mix(output)
           if entry.drawable and (entries is None or entry.name in entries)]
    return datasets.DatasetDict({entry.name: entry_dataset(output, entry, cache_dir=cache_dir)
                                 for entry in mix})


def mixture_batch_sampler(output: str, steps: int, *, seed: int = 0, start_step: int = 0,
                          shuffle_buffer: int = 10_000, entries: list[str] | None = None):
    """A ``multi_dataset_batch_sampler`` for ``SentenceTransformerTrainingArguments``
    that trains on the batches of a :class:`MixtureReader`.

    Use it with ``train_dataset=mixture_datasets(output, entries=entries)``; the batch
    size is ``per_device_train_batch_size``.

    Args:
        output: the build's output folder.
        steps: batches per epoch of the trainer (``max_steps`` for a run measured in
            steps).
        seed: the mixture reader's seed.
        start_step: the first step (to resume).
        shuffle_buffer: rows per entry held for shuffling.
        entries: entry names, as given to :func:`mixture_datasets`.
    Returns:
        A callable ``(dataset, batch_samplers, generator, seed) -> batch sampler``, as
        the trainer calls it.
    """
    MultiDatasetDefaultBatchSampler = extras.require(
        "sentence_transformers.base.sampler").MultiDatasetDefaultBatchSampler

    class MixtureBatchSampler(MultiDatasetDefaultBatchSampler):
        """Yields, per step, the indices in the concatenated datasets of one mixture batch."""

        def __iter__(self):
            offsets = np.cumsum([0] + [len(d) for d in self.dataset.datasets])
            reader = MixtureReader(output, self.batch_size, seed=seed, shuffle_buffer=shuffle_buffer,
                                   start_step=start_step + self.epoch * steps,
                                   max_steps=start_step + (self.epoch + 1) * steps, entries=entries)
            position = {entry.name: n for n, entry in enumerate(reader.entries)}
            for batch in reader:
                offset = int(offsets[position[batch.entry]])
                yield [offset + row for row in batch.rows]

        def __len__(self) -> int:
            return steps

    def make(dataset, batch_samplers, generator=None, seed=0):
        return MixtureBatchSampler(dataset, batch_samplers, generator=generator, seed=seed)

    return make
