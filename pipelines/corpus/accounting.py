"""Conservation: every record read ends as rows, a rejected record or a counted skip.

Two equations are checked for every dataset of a build and shown by the manifest, the count
table and ``corpus verify``:

    records:  read = paired + rejected records + skipped
    rows:     rows from the pair rules = rows written + rows dropped

*Records* are the units a source's pair rule decides on (a question, a cluster, a JSON
line; each source module names its unit). A source counts them with :func:`count_read`
when a record reaches the rule, :func:`count_paired` when it gives one row or more, and
:func:`count_skipped` (with a reason) for a record that is not a candidate by definition
(a dev-split question, an answer beyond the cap). Rejected records are counted by
:func:`pipelines.corpus.rejects.rejected`; a file that cannot be read counts as one record
read and rejected (besides the records read before the damage).

Input rows that are no dataset's records (a StackExchange tag wiki, an answer, a link that
is not a duplicate) are counted too, per source and table, as taken or skipped with a reason
(:func:`count_input_rows`), so that no row of an input file goes unaccounted.

*Rows* are counted by the core: every row a source emits enters normalisation, where it is
either kept (and written) or dropped with a reason (empty text, schema problem).

Counts travel as Beam metrics (namespace ``accounting.<dataset>``), which every runner
aggregates; the build reads them from the pipeline result.
"""
from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

NAMESPACE = "accounting."
READ, PAIRED, ROWS_IN, ROWS_DROPPED = "read", "paired", "rows_in", "rows_dropped"
SKIPPED_PREFIX = "skipped:"
# Input rows that are not records of any dataset (see count_input_rows).
INPUT_NAMESPACE, TAKEN = "input.", "taken"
# A lookup table's row (a passage, a query) that no record names (count_lookup_rows).
NOT_USED = "not_used"


@lru_cache(maxsize=None)
def _counter(dataset: str, name: str):
    # A counter object finds the running step's metrics when incremented, so one object
    # per (dataset, name) serves every call; creating it per record cost more than the count.
    return Metrics.counter(NAMESPACE + dataset, name)


def count_read(dataset: str, n: int = 1) -> None:
    """``n`` records of ``dataset`` reached its pair rule."""
    _counter(dataset, READ).inc(n)


def count_paired(dataset: str, n: int = 1) -> None:
    """``n`` records of ``dataset`` gave one row or more each."""
    _counter(dataset, PAIRED).inc(n)


def count_skipped(dataset: str, reason: str, n: int = 1) -> None:
    """``n`` records of ``dataset`` are not candidates by definition (``reason`` says why);
    they are counted, not written to the dead-letter output."""
    _counter(dataset, SKIPPED_PREFIX + reason).inc(n)


def count_input_rows(source: str, table: str, skipped: str | None = None, n: int = 1) -> None:
    """``n`` rows of a source's input ``table`` (``Posts.xml``, ``answers``) that no
    dataset's records count: taken into a record (``skipped`` None), or left out with the
    reason ``skipped`` (a tag wiki, an answer whose question is absent)."""
    _input_counter(source, f"{table}:{TAKEN if skipped is None else SKIPPED_PREFIX + skipped}").inc(n)


def count_lookup_rows(source: str, table: str, ids, named: list, rows: int | None = None) -> None:
    """Count one join task's rows of a lookup table (MS MARCO's passages, PAQ's) as input
    rows: a row is taken when its id is among the ``named`` ids (of the records meeting it in
    the task), else :data:`NOT_USED`. Every row of an id lands in one task, so each row is
    counted once however many records name it; counted once per task and reason, since a
    counter call per row costs.

    Args:
        ids: the id of each row of the task (a table's column).
        named: the columns of ids the task's records name (tables' columns).
        rows: the task's rows when ``ids`` holds each id once and ``rows`` exceeds it; the
            repeated rows are taken, each being a record of its own (rejected).
    """
    if not len(ids):
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    value_set = pa.chunked_array([chunk for column in named for chunk in column.chunks], ids.type).combine_chunks()
    not_used = len(ids) - (pc.sum(pc.is_in(ids, value_set=value_set)).as_py() or 0)
    for skipped, n in ((None, (len(ids) if rows is None else rows) - not_used), (NOT_USED, not_used)):
        if n:
            count_input_rows(source, table, skipped, n)


def counting_rejected_rows(items, source: str, table: str):
    """Pass on what the reader of a lookup table yields; a line it rejects (a tagged
    output) is a record, rejected, so its row counts as taken, as StackExchange counts its
    malformed rows. Rejects are rare, so they are counted one by one."""
    from apache_beam.pvalue import TaggedOutput

    for item in items:
        if isinstance(item, TaggedOutput):
            count_input_rows(source, table)
        yield item


@lru_cache(maxsize=None)
def _input_counter(source: str, name: str):
    return Metrics.counter(INPUT_NAMESPACE + source, name)


def input_rows(result) -> dict:
    """The counts of :func:`count_input_rows` of a finished pipeline.

    Returns:
        ``{source: {table: {"taken": n, "skipped": {reason: n}}}}``, sorted.
    """
    out: dict = {}
    for source, counts in collect_named(result, INPUT_NAMESPACE).items():
        for name, value in counts.items():
            table, _, use = name.partition(":")
            entry = out.setdefault(source, {}).setdefault(table, {TAKEN: 0, "skipped": {}})
            if use.startswith(SKIPPED_PREFIX):
                entry["skipped"][use[len(SKIPPED_PREFIX):]] = value
            else:
                entry[TAKEN] += value
    return out


def count_row_in(dataset: str, n: int = 1) -> None:
    """``n`` rows from the pair rules entered normalisation (core use)."""
    _counter(dataset, ROWS_IN).inc(n)


def count_row_dropped(dataset: str, n: int = 1) -> None:
    """``n`` rows were dropped by normalisation or the schema check (core use)."""
    _counter(dataset, ROWS_DROPPED).inc(n)


def collect(result) -> dict:
    """The accounting counters of a finished pipeline, per dataset.

    Returns:
        ``{dataset: {"read": n, "paired": n, "rows_in": n, "rows_dropped": n,
        "skipped": {reason: n}}}`` (absent counters are 0).
    """
    counts: dict = defaultdict(lambda: {READ: 0, PAIRED: 0, ROWS_IN: 0, ROWS_DROPPED: 0, "skipped": {}})
    for metric in result.metrics().query(MetricsFilter())["counters"]:
        namespace = metric.key.metric.namespace
        if not namespace.startswith(NAMESPACE):
            continue
        value = metric.committed if metric.committed is not None else metric.attempted
        entry = counts[namespace[len(NAMESPACE):]]
        name = metric.key.metric.name
        if name.startswith(SKIPPED_PREFIX):
            reason = name[len(SKIPPED_PREFIX):]
            entry["skipped"][reason] = entry["skipped"].get(reason, 0) + value
        else:
            entry[name] += value
    return {dataset: dict(entry) for dataset, entry in counts.items()}


def collect_named(result, prefix: str) -> dict:
    """The counters of a finished pipeline in namespaces ``<prefix><dataset>``, such as the
    filters' ``overlap.<dataset>`` (rows per evaluation set) and ``dedup.<dataset>``.

    Returns:
        ``{dataset: {name: n}}``, names sorted.
    """
    counts: dict = defaultdict(dict)
    for metric in result.metrics().query(MetricsFilter())["counters"]:
        namespace = metric.key.metric.namespace
        if namespace.startswith(prefix):
            value = metric.committed if metric.committed is not None else metric.attempted
            entry = counts[namespace[len(prefix):]]
            entry[metric.key.metric.name] = entry.get(metric.key.metric.name, 0) + value
    return {dataset: dict(sorted(entry.items())) for dataset, entry in sorted(counts.items())}


def equations(counts: dict, rows_written: int, rejected_total: int, records_counted: bool = True) -> dict:
    """Both equations of one dataset, with whether each holds.

    Args:
        counts: the dataset's entry of :func:`collect` (may be empty).
        rows_written: rows in the dataset's shards.
        rejected_total: records in the dataset's dead-letter output.
        records_counted: the source counts its records (``Source.counts_records``); when
            it does not, the records equation is reported as unchecked (``holds`` None).
    """
    rows_in = counts.get(ROWS_IN, 0)
    dropped = counts.get(ROWS_DROPPED, 0)
    rejected_records = rejected_total - dropped
    skipped = sum(counts.get("skipped", {}).values())
    read = counts.get(READ, 0)
    paired = counts.get(PAIRED, 0)
    return {
        "records": {
            "read": read, "paired": paired, "rejected": rejected_records,
            "skipped": dict(sorted(counts.get("skipped", {}).items())),
            "holds": (read == paired + rejected_records + skipped) if records_counted else None,
        },
        "rows": {
            "from_rules": rows_in, "written": rows_written, "dropped": dropped,
            "holds": rows_in == rows_written + dropped,
        },
    }
