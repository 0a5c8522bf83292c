"""Rejected records: every record a run does not turn into a row is kept with its reason.

A reject is a plain dict with the fields of ``schemas/rejected_record.json``. Sources
and core transforms emit them on the tagged output :data:`REJECTED`; the build writes
them to ``OUT/_rejected/<dataset>/`` and counts them by reason in the manifest. They
are also counted as Beam metrics (namespace ``rejected.<dataset>``, name = reason) so
a runner's UI shows them live.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache

from apache_beam.metrics import Metrics

from pipelines.corpus import accounting

REJECTED = "rejected"
EXCERPT_CHARS = 2000
# The memory address in an object's default repr ("<ast.Call object at 0x7f56fb5f7be0>"),
# which parsers' error messages quote: it differs from process to process.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def _excerpt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        text = value[:EXCERPT_CHARS * 4].decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    # Lone surrogates (bytes kept by a "surrogateescape" decode) cannot be written as UTF-8.
    return text[:EXCERPT_CHARS].encode("utf-8", "backslashreplace").decode("utf-8")


def make_reject(dataset: str, reason: str, *, source_file: str, record_id: str = "",
                detail: str = "", excerpt=None) -> dict:
    """Build a rejected-record dict.

    Args:
        dataset: the dataset the record was a candidate for.
        reason: short snake_case reason; the manifest counts by it.
        source_file: upstream file, relative to the input root.
        record_id: the record's id, or a position such as ``line 1042`` / ``byte 5120``.
        detail: a sentence for people; memory addresses quoted from an error message
            (`` at 0x...``) are removed, so that the same input gives the same dead letters
            in every process.
        excerpt: the record itself (str, bytes or any JSON-able value); its first
            :data:`EXCERPT_CHARS` characters are kept.
    """
    return {
        "dataset": dataset,
        "reason": reason,
        "source_file": _excerpt(source_file),
        "record_id": _excerpt(str(record_id)),
        "detail": _excerpt(_ADDRESS.sub("", detail) if isinstance(detail, str) else detail),
        "excerpt": _excerpt(excerpt),
    }


@lru_cache(maxsize=None)
def _reject_counter(dataset: str, reason: str):
    return Metrics.counter(f"rejected.{dataset}", reason)


def count_reject(reject: dict) -> None:
    """Increment the Beam counter for this reject's dataset and reason."""
    _reject_counter(reject["dataset"], reject["reason"]).inc()


def rejected(dataset: str, reason: str, *, source_file: str, record_id: str = "",
             detail: str = "", excerpt=None, counts_as_read: bool = False):
    """A reject ready to ``yield`` from a DoFn: counted, and tagged :data:`REJECTED`.

    Arguments are those of :func:`make_reject`; ``counts_as_read`` also counts the reject as
    one record read (:mod:`pipelines.corpus.accounting`): for a file that cannot be read
    (unreadable, empty, missing) and for a record rejected where it is read, before any
    other count saw it.
    """
    import apache_beam as beam

    reject = make_reject(dataset, reason, source_file=source_file, record_id=record_id,
                         detail=detail, excerpt=excerpt)
    count_reject(reject)
    if counts_as_read:
        accounting.count_read(dataset)
    return beam.pvalue.TaggedOutput(REJECTED, reject)


def layout_rejects(pipeline, label: str, rejects: list[dict]):
    """Rejects decided while a source lists its inputs (a required file missing, a second
    copy of an input left out), as a PCollection for ``SourceOutput.rejects``.

    Args:
        pipeline: the pipeline they are added to.
        label: a unique transform label, prefixed with the source name.
        rejects: dicts from :func:`make_reject`; each is counted (Beam metrics) when the
            pipeline runs.
    """
    import apache_beam as beam

    return (pipeline
            | label >> beam.Create(rejects)
            | f"{label}/Count" >> beam.Map(_counted))


def _counted(reject: dict) -> dict:
    count_reject(reject)
    accounting.count_read(reject["dataset"])  # a layout problem is a whole-file reject
    return reject
