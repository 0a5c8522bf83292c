"""The MS MARCO pair rules (see the package docstring), and the Beam steps that apply the
per-query cap to the text triples of ``triples_small``."""
from __future__ import annotations

import bisect
import hashlib

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from pipelines.corpus import accounting
from pipelines.corpus.schema import make_row
from pipelines.engine import id_hash, id_hash_one

from .parse import DATASET

DEFAULT_NEGATIVES_PER_POSITIVE = 33
DEFAULT_TRIPLES_PER_QUERY = 35


# -- pair rules ------------------------------------------------------------------------

def selection_key(seed: str, *values) -> int:
    """Deterministic pseudo-random rank of one candidate: :func:`selection_keys` of one row,
    in plain Python. Values are ids (ints) or texts (the text triples of
    ``triples_small``), a text taken as its 64-bit BLAKE2b."""
    key = _as_id(seed) & _MASK64
    for value in values:
        key = id_hash_one(key ^ id_hash_one(_as_id(value) & _MASK64))
    return key


_MASK64 = (1 << 64) - 1


def selection_keys(seed: str, *columns) -> np.ndarray:
    """Deterministic pseudo-random ranks of candidates given as columns of integer ids
    (arrays of equal length), as ``uint64``: SplitMix64's finaliser chained over the
    seed's 64-bit BLAKE2b and each id. Choosing the candidates with the smallest keys takes
    an even spread of them, the same on every run and runner, whatever order the input
    comes in; vectorised, so ranking millions of triples costs next to nothing."""
    key = np.full(len(columns[0]), _as_id(seed), dtype=np.int64).view(np.uint64)
    for column in columns:
        key = id_hash((key ^ id_hash(column)).view(np.int64))
    return key


def _as_id(value) -> int:
    """An int id as itself; a text as its 64-bit BLAKE2b (as a signed 64-bit int)."""
    if isinstance(value, int):
        return value
    digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def select_hard_negatives(qid: int, positives, negatives_by_system: dict, judged=(), *,
                          systems=None, per_positive: int = DEFAULT_NEGATIVES_PER_POSITIVE,
                          seed: str = "") -> list[tuple[int, int]]:
    """**Project rule**: the ``(positive pid, negative pid)`` triplets of one query of
    the hard-negatives file.

    The candidates are the union of the lists of the chosen mining ``systems`` (all of
    them by default), minus every passage known to be relevant for the query (the
    line's ``pos`` and the query's qrels). Each positive gets ``per_positive`` of them,
    those with the smallest :func:`selection_key` of ``(qid, positive, negative)``.

    Why: 33 per (query, positive) over the file's 532,751 pairs lands on the documented
    17,579,773 (about 35 per judged query). Pooling all systems gives hundreds of
    candidates per query, so the cap nearly always binds. The cross-encoder scores that
    sentence-transformers used to drop false negatives are not loaded (a pickle); taking
    a hash-spread sample instead of each system's top ranks keeps the likeliest false
    negatives (the very top) from dominating, and does not depend on input order.
    Different positives of one query draw different negatives.
    """
    candidates = np.array(sorted(negative_candidates(positives, negatives_by_system, judged, systems)),
                          dtype=np.int64)
    triplets = []
    for positive in sorted(set(positives)):
        keys = selection_keys(seed, np.full(len(candidates), qid), np.full(len(candidates), positive),
                              candidates)
        # Stable on candidates sorted by pid: equal keys fall back to the smaller pid.
        ranked = candidates[np.argsort(keys, kind="stable")][:per_positive]
        triplets.extend((positive, int(negative)) for negative in ranked)
    return triplets


def negative_candidates(positives, negatives_by_system: dict, judged=(), systems=None) -> set:
    """The candidate negatives of one query of the hard-negatives file: the pids mined by
    the chosen ``systems`` (all when ``None``), minus the line's ``positives`` and the
    query's ``judged`` relevant pids (see :func:`select_hard_negatives`)."""
    wanted = None if systems is None else set(systems)
    known_relevant = set(positives) | set(judged)
    return {pid for system, pids in negatives_by_system.items()
            if wanted is None or system in wanted for pid in pids} - known_relevant


def keep_per_query(candidates, limit: int) -> list:
    """**Project rule**: the triples one query keeps from ``qidpidtriples`` or
    ``triples_small``: the ``limit`` distinct candidates with the smallest keys.

    Candidates are ``(selection_key, positive, negative, ...)`` tuples; the key is
    :func:`selection_key` of ``(query, positive, negative)``, so the choice never depends
    on the file's order (the files are sorted by query, and their first lines would all
    share BM25's top ranks). A triple repeated in the file counts once. Default 35 per
    query: 17,579,773 / ~500k judged queries.
    """
    return _SmallestDistinct.smallest(candidates, limit)


def triplet_row(triplet: dict) -> dict:
    """msmarco_triplets: (query text, relevant passage text, negative passage text)."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, triplet["query"], triplet["positive"], triplet["negative"],
                    source_file=triplet["source_file"], record_id=triplet["record_id"])


# -- Beam transforms --------------------------------------------------------------------

class _SmallestDistinct(beam.CombineFn):
    """Keep the ``limit`` smallest distinct candidates of a key (see :func:`keep_per_query`).
    Combiner lifting keeps only ``limit`` candidates per query and worker before the shuffle."""

    def __init__(self, limit: int):
        self.limit = limit

    @staticmethod
    def smallest(candidates, limit: int) -> list:
        kept: list = []
        for candidate in candidates:
            _SmallestDistinct._insert(kept, candidate, limit)
        return kept

    @staticmethod
    def _insert(kept: list, candidate, limit: int) -> None:
        # Candidates are equal when (key, positive, negative) are; the smaller tuple
        # (e.g. the earlier line) stands for them.
        if len(kept) >= limit and candidate >= kept[-1]:
            return
        position = bisect.bisect_left(kept, candidate)
        if position > 0 and kept[position - 1][:3] == candidate[:3]:
            return
        if position < len(kept) and kept[position][:3] == candidate[:3]:
            kept[position] = candidate
            return
        kept.insert(position, candidate)
        del kept[limit:]

    def create_accumulator(self):
        return []

    def add_input(self, kept, candidate):
        self._insert(kept, candidate, self.limit)
        return kept

    def merge_accumulators(self, accumulators):
        merged: list = []
        for kept in accumulators:
            for candidate in kept:
                self._insert(merged, candidate, self.limit)
        return merged

    def extract_output(self, kept):
        return kept


class _SmallestDistinctCounted(_SmallestDistinct):
    """:class:`_SmallestDistinct` that also counts the candidates it saw, so the ones not
    kept can be counted as skipped records; outputs ``(seen, kept)``."""

    def create_accumulator(self):
        return 0, []

    def add_input(self, accumulator, candidate):
        seen, kept = accumulator
        return seen + 1, super().add_input(kept, candidate)

    def merge_accumulators(self, accumulators):
        accumulators = list(accumulators)
        return (sum(seen for seen, _kept in accumulators),
                super().merge_accumulators(kept for _seen, kept in accumulators))

    def extract_output(self, accumulator):
        return accumulator


class _KeyCandidates(beam.DoFn):
    """Prefix each text triple with its :func:`selection_key` and count it."""

    def __init__(self, seed: str):
        self.seed = seed
        self.read = Metrics.counter("msmarco", "triples_read")

    def process(self, element):
        query, (positive, negative, *rest) = element
        self.read.inc()
        accounting.count_read(DATASET)
        yield query, (selection_key(self.seed, query, positive, negative), positive, negative, *rest)


def _count_kept(element):
    """``(query, kept)`` from ``(query, (seen, kept))``; the triples not kept are counted
    as skipped records."""
    query, (seen, kept) = element
    Metrics.counter("msmarco", "triples_kept").inc(len(kept))
    accounting.count_skipped(DATASET, "beyond_query_cap", seen - len(kept))
    return query, kept


def _text_triplets(element):
    query, kept = element
    for _key, positive, negative, source_file, line in kept:
        yield {"query": query, "positive": positive, "negative": negative,
               "source_file": source_file, "record_id": f"line {line}"}
