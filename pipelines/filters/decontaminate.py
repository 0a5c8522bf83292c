"""Decontamination: a row whose anchor or positive overlaps an evaluation text is dropped.

Applied to each dataset's rows after normalisation (``<dataset>/Decontaminate``), with the
evaluation index (:class:`pipelines.corpus.overlap.EvalIndex`, serialised) as a side input:
the index is small, so the step's cost grows with the rows, not with the evaluation sets.
A dropped row becomes a rejected record with reason :data:`REASON` and a detail naming the
field, the evaluation set, the matched id and the rule; it is counted as a row dropped
(:func:`pipelines.corpus.accounting.count_row_dropped`), so the accounting holds with the
step as without it, and in the Beam counter ``overlap.<dataset>`` / ``<evaluation set>``
that the manifest and the report show
(:func:`pipelines.corpus.accounting.collect_named`).

Rows come as Arrow tables (matched a table at a time) or as dicts (gathered into batches
of ``rows_per_batch``, matched at once, and passed on as the very same dicts).
"""
from __future__ import annotations

from functools import cache

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows

from pipelines.corpus import accounting
from pipelines.corpus.overlap import RULE_NAMES, EvalIndex
from pipelines.corpus.rejects import REJECTED, count_reject, make_reject
from pipelines.engine import files

REASON = "eval_overlap"
FIELDS = ("anchor", "positive")
NAMESPACE = "overlap."
# The index of each worker process, decoded once for all its bundles and steps.
_INDEXES: dict[bytes, EvalIndex] = {}


def load_index(data: bytes) -> EvalIndex:
    """The index serialised in ``data``, decoded once per process."""
    key = EvalIndex.key_of(data)
    if key not in _INDEXES:
        _INDEXES.clear()
        _INDEXES[key] = EvalIndex.from_bytes(data)
    return _INDEXES[key]


def index_side_input(pipeline: beam.Pipeline, index: bytes | str, label: str = "Decontaminate/Index"):
    """The side input :class:`Decontaminate` takes.

    Args:
        index: :meth:`EvalIndex.to_bytes`, or the path (any filesystem) of a file holding
            them, which a worker reads: a large index then stays out of the pipeline's
            description (a Dataflow job's is limited in size).
    """
    if isinstance(index, (bytes, bytearray)):
        data = pipeline | label >> beam.Create([bytes(index)])
    else:
        data = pipeline | label >> beam.Create([index]) | f"{label}/Read" >> beam.Map(_read_file)
    return beam.pvalue.AsSingleton(data)


def _read_file(path: str) -> bytes:
    with files.open_raw(path) as stream:
        return stream.read()


class Decontaminate(beam.PTransform):
    """Rows of one dataset -> ``rows`` (the kept ones, dicts or tables as they came) and
    ``rejected`` (:data:`pipelines.corpus.rejects.REJECTED`).

    Args:
        dataset: the dataset id.
        index: the side input of :func:`index_side_input`.
    """

    def __init__(self, dataset: str, index, rows_per_batch: int = 4096):
        super().__init__()
        self.dataset, self.index, self.rows_per_batch = dataset, index, rows_per_batch

    def expand(self, rows):
        step = beam.ParDo(DropOverlaps(self.dataset, self.rows_per_batch), self.index)
        if rows.element_type is pa.Table:  # tables stay tables, with their coder
            step = step.with_output_types(pa.Table)
        return rows | step.with_outputs(REJECTED, main="rows")


@cache
def _overlap_counter(dataset: str, evalset: str):
    return Metrics.counter(NAMESPACE + dataset, evalset)


class DropOverlaps(beam.DoFn):
    """The step of :class:`Decontaminate`: ``process(rows, index_bytes)``."""

    def __init__(self, dataset: str, rows_per_batch: int = 4096):
        self.dataset = dataset
        self.rows_per_batch = rows_per_batch

    def start_bundle(self):
        self._batch: list[dict] = []
        self._index: EvalIndex | None = None

    def process(self, element, index_bytes: bytes):
        self._index = load_index(index_bytes)
        if isinstance(element, pa.Table):
            yield from self._table(element)
            return
        self._batch.append(element)
        if len(self._batch) >= self.rows_per_batch:
            yield from self._dicts()

    def finish_bundle(self):
        for output in self._dicts():
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(output.tag, GlobalWindows.windowed_value(output.value))
            else:
                yield GlobalWindows.windowed_value(output)

    def _table(self, table: pa.Table):
        if table.num_rows == 0:
            return
        columns = [table[name] if table[name].type == pa.string() else table[name].cast(pa.string())
                   for name in FIELDS]  # dictionary-encoded texts too
        texts = pa.chunked_array([chunk for column in columns for chunk in column.chunks], pa.string())
        dropped = self._overlaps(texts, table.num_rows)
        if not dropped:
            yield table
            return
        positions = sorted(dropped)
        if table.num_rows > len(dropped):
            keep = np.ones(table.num_rows, bool)
            keep[positions] = False
            yield table.filter(keep)
        for position, row in zip(positions, table.take(positions).to_pylist()):
            yield self._reject(row, *dropped[position])

    def _dicts(self):
        batch, self._batch = self._batch, []
        if not batch:
            return
        texts = pa.array([row.get(name) for name in FIELDS for row in batch], pa.string())
        dropped = self._overlaps(texts, len(batch))
        for position, row in enumerate(batch):
            if position in dropped:
                yield self._reject(row, *dropped[position])
            else:
                yield row

    def _overlaps(self, texts, rows: int) -> dict[int, tuple]:
        """``{row position: (field, entry, rule, score)}`` of the rows to drop; ``texts``
        holds the anchors, then the positives."""
        matches = self._index.match(texts)
        dropped = {}
        for position in matches.matched.nonzero()[0].tolist():
            row = position % rows
            if row not in dropped:  # the anchor's match is reported when both match
                dropped[row] = (FIELDS[position // rows], int(matches.entry[position]),
                                int(matches.rule[position]), float(matches.score[position]))
        return dropped

    def _reject(self, row: dict, field: str, entry: int, rule: int, score: float):
        evalset, entry_id = self._index.describe(entry)
        how = RULE_NAMES[rule] + (f", similarity {score:.2f}" if RULE_NAMES[rule] == "jaccard" else "")
        reject = make_reject(
            self.dataset, REASON, source_file=row.get("source_file") or "?", record_id=row.get("record_id") or "",
            detail=f"{field} overlaps evaluation set {evalset!r}, id {entry_id!r} (rule {how})", excerpt=row)
        count_reject(reject)
        accounting.count_row_dropped(self.dataset)
        _overlap_counter(self.dataset, evalset).inc()
        return beam.pvalue.TaggedOutput(REJECTED, reject)
