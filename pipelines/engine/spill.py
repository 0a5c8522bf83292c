"""Step 1 of the sharded sink (:mod:`pipelines.engine.write`): records spilled as sorted runs.

:class:`SpillRuns` buffers a bundle's records and, every ``spill_bytes``, writes them as
one Arrow run sorted by (subset, key), emitting only the run's description;
:class:`SpillByDataset` does so for the records of several datasets at once. In a run,
repeated texts are stored once (:func:`elide_repeats`, undone by :func:`restore_repeats`
when a shard reads the run) and columns with a handful of values are dictionary-encoded
(:func:`dictionary_encoded`).
"""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.transforms.window import GlobalWindows

from pipelines.engine.join import cut_to_fit, write_run
from pipelines.engine.shards import KEY, ROW_OVERHEAD_BYTES, ShardingConfig, key_halves, row_keys
from pipelines.corpus.schema import records_table


def elide_repeats(table: pa.Table, columns, batch_starts) -> pa.Table:
    """A run's sorted table with every value of ``columns`` that repeats the one of the row
    before it, in the same group and the same run batch, replaced by null.

    Rows sharing a group text lie side by side in a run (their keys share the first
    half), and so do, mostly, the rows that repeat another text with it: MS MARCO's rows
    of one query and relevant passage, PAQ's questions of one passage. Each such text is
    then written and read back once per run batch instead of once per row. A read of a
    run starts at a batch or at a group (shard ranges are ranges of the group hash), so
    the row it starts at always holds its text: :func:`restore_repeats` needs nothing
    from outside what it reads. The values are compared, not their hashes, so different
    texts are never merged.

    Args:
        table: the run's rows sorted by key, with the ``KEY`` column.
        columns: non-nullable text columns to elide (null marks an elided value).
        batch_starts: the first row of each record batch the run is written in.
    """
    rows = table.num_rows
    groups, _second = key_halves(table[KEY])
    same_group = groups[1:] == groups[:-1]
    starts = np.asarray(list(batch_starts), dtype=np.int64)
    for name in columns:
        index = table.schema.get_field_index(name)
        column = table[name].combine_chunks()
        if rows > 1:
            same = pc.equal(column.slice(1), column.slice(0, rows - 1)).to_numpy(zero_copy_only=False)
            repeat = np.concatenate(([False], same_group & same))
            repeat[starts] = False
            if repeat.any():
                # (replace_with_mask drops the bytes of what it nulls; if_else keeps them)
                column = pc.replace_with_mask(column, pa.array(repeat), pa.nulls(int(repeat.sum()), column.type))
        # Nullable in every run, elided or not, so that reads of several runs concatenate.
        table = table.set_column(index, table.schema.field(name).with_nullable(True), column)
    return table


def restore_repeats(table: pa.Table, columns) -> pa.Table:
    """Rows read from runs with every column of ``columns`` elided by :func:`elide_repeats`
    made whole again: a dictionary array of the values stored, one index per row, so
    that no text is copied here (the shard's ``take`` and ``cast`` copy each once).

    Args:
        table: reads of runs, each starting at a run batch or a group.
        columns: the columns :func:`elide_repeats` was given.
    Raises:
        ValueError: a read starts at an elided value (its text is outside the read).
    """
    for name in columns:
        column = table[name]
        if column.null_count == 0:
            continue
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        indices = np.cumsum(valid, dtype=np.int64) - 1
        if indices[0] < 0:
            raise ValueError(f"a read of runs starts at an elided {name!r} value")
        stored = column.drop_null()
        stored = stored.combine_chunks() if isinstance(stored, pa.ChunkedArray) else stored
        restored = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32()), stored)
        table = table.set_column(table.schema.get_field_index(name), pa.field(name, restored.type), restored)
    return table


def dictionary_encoded(table: pa.Table, columns) -> pa.Table:
    """``table`` with ``columns`` dictionary-encoded: in a run, a column with a handful of
    values (one dataset, a few files and subsets) then costs an index a row instead of
    its text (the shard's ``cast`` decodes it)."""
    for name in columns:
        field = table.schema.field(name)
        column = pc.dictionary_encode(table[name].combine_chunks())
        table = table.set_column(table.schema.get_field_index(name),
                                 pa.field(name, column.type, nullable=field.nullable), column)
    return table


def record_size(record: dict) -> int:
    """Estimated bytes of a record: its text lengths plus a fixed overhead."""
    return ROW_OVERHEAD_BYTES + sum(len(v) for v in record.values() if isinstance(v, str))


def table_size(table: pa.Table) -> int:
    """:func:`record_size` summed over a table of records (UTF-8 bytes for characters)."""
    text = sum(pc.sum(pc.binary_length(table[name])).as_py() or 0
               for name in table.schema.names if pa.types.is_string(table.schema.field(name).type))
    return text + ROW_OVERHEAD_BYTES * table.num_rows


# Records buffered as dicts before they are turned into one Arrow table.
RECORDS_PER_TABLE = 4096


class SpillRuns(beam.DoFn):
    """Buffer records (dicts, or Arrow tables of them), spill them as Arrow runs sorted
    by (subset, key), emit the runs' descriptions."""

    def __init__(self, spill_dir: str, subset_field: str | None, shard_format, config: ShardingConfig):
        self.spill_dir = spill_dir
        self.subset_field = subset_field
        self.format = shard_format
        self.config = config
        repeated = shard_format.repeated_texts
        # The rows sharing the first repeated text share the first half of their keys.
        self.group_field = repeated[0] if repeated else None

    def setup(self):
        self._schema = self.format.schema()

    def start_bundle(self):
        self._records: list[dict] = []
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._bytes = 0

    def process(self, record):
        if isinstance(record, pa.Table):
            yield from self._add_table(record)
            return
        self._records.append(record)
        self._bytes += record_size(record)
        self._rows += 1
        if len(self._records) >= RECORDS_PER_TABLE:
            # Held as Arrow, a buffered record takes its text's size, not a dict's.
            self._tables.append(self._records_table())
        if self._bytes >= self.config.spill_bytes:
            yield self._spill()

    def _add_table(self, record: pa.Table):
        if record.num_rows == 0:
            return
        table = record.select(self._schema.names).cast(self._schema)
        limit = self.config.spill_bytes
        for piece, size in cut_to_fit(table, table_size(table), limit - self._bytes, limit):
            self._tables.append(piece)
            self._bytes += size
            self._rows += piece.num_rows
            if self._bytes >= limit:
                yield self._spill()

    def finish_bundle(self):
        if self._rows:
            yield GlobalWindows.windowed_value(self._spill())

    def _records_table(self) -> pa.Table:
        records, self._records = self._records, []
        return records_table(records, self._schema)

    def _buffered(self) -> pa.Table:
        if self._records:
            self._tables.append(self._records_table())
        tables = self._tables
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    def _spill(self) -> dict:
        # Combined first, so that the buffered chunks are freed before the sort copies the
        # rows (sorted from the chunks, they stay alive beside the sort's own gathering:
        # PAQ's peak at 4x input 509 -> 525-540 MB).
        table = self._buffered().combine_chunks()
        avg = max(1, self._bytes // self._rows)
        self.start_bundle()
        table = table.append_column(KEY, row_keys(table, self.group_field))
        subset_column = self.subset_field if self.subset_field else None
        # Encoded before the sort, which then moves their indices, not their texts (a
        # sort key is encoded after it: its ranks are taken from its texts).
        few_values = self.format.few_values
        table = dictionary_encoded(table, [name for name in few_values if name != subset_column])
        table = table.take(sort_order(table, subset_column))
        rows_per_group = max(1, self.config.spill_row_group_bytes // avg)
        # Row groups never span two subsets, so a shard reads only its group's.
        subsets, slices = [], []
        for subset, start, length in _subset_slices(table, subset_column):
            for offset in range(start, start + length, rows_per_group):
                subsets.append(subset)
                slices.append((offset, min(rows_per_group, start + length - offset)))
        table = dictionary_encoded(table, [name for name in few_values if name == subset_column])
        if self.format.repeated_texts:
            table = elide_repeats(table, self.format.repeated_texts, [offset for offset, _ in slices])
        path, batches = write_run(self.spill_dir, table, KEY, slices)
        row_groups = [[subset, first, last, chunk.num_rows, avg * chunk.num_rows]
                      for subset, (first, last, chunk) in zip(subsets, batches)]
        return {"path": path, "row_groups": row_groups}


class SpillByDataset(beam.DoFn):
    """Step 1 of :class:`WriteShards` for records of several datasets at once (the rejected
    records of a source): one buffer and spill folder per dataset, runs emitted as
    ``(dataset, run)``. Applied to each PCollection of records where it is produced, so
    that records are never gathered in one PCollection first (which a local runner would
    hold in memory whole).

    Args:
        spill_dirs: per dataset id, its spill folder.
        shard_format, config: as for :class:`WriteShards`.
        field: the record field naming the dataset.
    """

    def __init__(self, spill_dirs: dict[str, str], shard_format, config: ShardingConfig,
                 field: str = "dataset"):
        self.spill_dirs = spill_dirs
        self.format = shard_format
        self.config = config
        self.field = field

    def setup(self):
        self._spills = {}
        for dataset, spill_dir in self.spill_dirs.items():
            spill = SpillRuns(spill_dir, None, self.format, self.config)
            spill.setup()
            self._spills[dataset] = spill

    def start_bundle(self):
        for spill in self._spills.values():
            spill.start_bundle()

    def process(self, record):
        dataset = record.get(self.field) if isinstance(record, dict) else None
        if dataset not in self._spills:
            raise ValueError(f"record for dataset {dataset!r} that this run does not build")
        for run in self._spills[dataset].process(record):
            yield dataset, run

    def finish_bundle(self):
        for dataset, spill in sorted(self._spills.items()):
            if spill._rows:
                yield GlobalWindows.windowed_value((dataset, spill._spill()))


def sort_order(table: pa.Table, subset_column: str | None) -> np.ndarray:
    """The positions of a table's rows sorted by (subset, key), as Arrow's stable
    ``sort_by`` orders them: keys compared as their two big-endian 64-bit halves (numpy
    sorts those several times faster than Arrow sorts 16-byte binary values), subsets by
    their rank."""
    first, second = key_halves(table[KEY])
    keys = [second, first]
    if subset_column is not None:
        ranks = pc.rank(table[subset_column].combine_chunks(), sort_keys="ascending", tiebreaker="dense")
        keys.append(ranks.to_numpy())
    return np.lexsort(keys)


def _subset_slices(table: pa.Table, subset_column: str | None):
    """``(subset, start, length)`` of each run of equal subsets in a sorted table."""
    if subset_column is None:
        yield "", 0, table.num_rows
        return
    start = 0
    for value, length in _runs(table[subset_column]):
        yield value or "", start, length
        start += length


def _runs(column) -> list[tuple[str, int]]:
    """``(value, length)`` of each run of equal values of a column."""
    encoded = pc.run_end_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    ends = encoded.run_ends.to_pylist()
    values = encoded.values.to_pylist()
    return [(value, end - start) for value, start, end in zip(values, [0] + ends[:-1], ends)]

