"""Arrow tables as Beam elements: their coder, and the DoFn that gathers dict records into
tables.

Rows travel through the engine in Arrow tables of thousands of rows, so that Beam's
per-element cost is paid per table, not per row.
"""
from __future__ import annotations

from typing import Callable

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindows


class ArrowTableCoder(beam.coders.Coder):
    """Beam coder of ``pa.Table`` elements: Arrow IPC bytes, and a size estimate that does
    not encode anything (Beam samples element sizes for its counters; the default pickle
    coder would serialise every sampled table to measure it)."""

    def encode(self, table: pa.Table) -> bytes:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def decode(self, data: bytes) -> pa.Table:
        return pa.ipc.open_stream(data).read_all()

    def estimate_size(self, table: pa.Table) -> int:
        return table.nbytes

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self):
        return pa.Table


beam.coders.registry.register_coder(pa.Table, ArrowTableCoder)


def tables(transform):
    """``transform`` (a ParDo, Map or FlatMap) declared to output ``pa.Table`` elements, so
    they travel with :class:`ArrowTableCoder`."""
    return transform.with_output_types(pa.Table)


def as_tables(pcoll):
    """Mark ``pcoll`` (e.g. one tagged output of a multi-output ParDo, which cannot be typed
    on its own) as holding ``pa.Table`` elements, so that it uses :class:`ArrowTableCoder`."""
    pcoll.element_type = pa.Table
    return pcoll


class GatherTables(beam.DoFn):
    """Gather the dict records of a PCollection into Arrow tables (one Beam element per
    ``rows_per_table`` records, and one at the end of each bundle), e.g. to spill them.

    Args:
        schema: the tables' schema (keys of a record outside it are left out).
        to_record: optional ``element -> record dict, or a tagged reject`` (passed on as it
            is), applied to each element first.
        rows_per_table: records of a full table.
    """

    def __init__(self, schema: pa.Schema, to_record: Callable | None = None, rows_per_table: int = 1 << 14):
        self.schema = schema
        self.to_record = to_record
        self.rows_per_table = rows_per_table

    def start_bundle(self):
        from pipelines.corpus.schema import RowTables

        self._records = RowTables(self.rows_per_table, self.schema)

    def process(self, element):
        record = element if self.to_record is None else self.to_record(element)
        if not isinstance(record, dict):
            yield record
            return
        table = self._records.add(record)
        if table is not None:
            yield table

    def finish_bundle(self):
        table = self._records.flush()
        if table is not None:
            yield GlobalWindows.windowed_value(table)
