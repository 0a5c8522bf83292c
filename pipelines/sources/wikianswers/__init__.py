"""WikiAnswers paraphrase corpus (OQA): pairs of paraphrased questions from one cluster.

Files (under ``IN/wikianswers/``, as published at
knowitall.cs.washington.edu/oqa/data/wikianswers/):
    40 gzip-compressed part files, 8 GB compressed / 40 GB raw. The README does not name
    them, so every file below the folder is read (hidden files excepted), whatever its
    name, and its compression is sniffed from the bytes (gzip, bzip2, xz, zstd or plain).

Format: one cluster per line, UTF-8. Items are separated by TAB; each item is
``q:<question paraphrase>`` or ``a:<answer>``, split on the first ``:`` only (questions
contain colons). Example::

    q:How many muslims make up indias 1 billion population?<TAB>q:...<TAB>a:Over 160 million ...

Parse (:func:`parse_cluster`): ``q:`` items are the candidates; ``a:`` items (11% of the
clusters have one, some several) are not used by this dataset and are skipped without a
reject. Empty items (two TABs in a row, a trailing TAB, ``q:`` with nothing after it)
carry nothing and are ignored. An item without a ``q:``/``a:`` prefix is a reject
``malformed_item`` and the rest of the cluster is still used. Blank lines are skipped; a
line that is not valid UTF-8 is a reject ``bad_encoding``; a file without any byte is the
core reader's ``empty_file``.

Records (:mod:`pipelines.corpus.accounting`): a record is one cluster line. It gives its
pairs or ends as a ``too_few_questions`` reject; a line that is not UTF-8 is one record
rejected as ``bad_encoding``. A ``malformed_item`` is a record of its own, read and
rejected, beside the cluster it sits in (whose other items are still used). No record is
skipped.

Pair rule (**project rule**, ``docs/corpus-spec.md``), one function each:
    :func:`distinct_questions`  duplicates inside a cluster removed: questions equal
                                after whitespace collapsing and case folding are one
                                question (counted in the Beam metric
                                ``wikianswers/duplicate_questions_removed``)
    :func:`cluster_pairs`       which pairs a cluster gives: the distinct questions are
                                ranked by a hash of their text (and the seed); the first
                                ``pairs_per_cluster + 1`` of them are chained,
                                (r0, r1), (r1, r2), ...; a cluster with fewer than 2
                                distinct questions is a reject ``too_few_questions``

Documented count: 77,427,422 pairs from 30,370,994 clusters, i.e. 2.55 pairs per
cluster. A cluster with n distinct questions gives min(n - 1, pairs_per_cluster) pairs.
The OQA README gives an average of 25 questions per cluster, so most clusters reach the
cap, and a small fixed cap is the rule that fits. A later upload of the same corpus has
27,383,151 sets, which we read as the clusters with at least 2 distinct questions (the
other ~3.0M are singletons). With the default cap of 3 that is at most
27,383,151 x 3 = 82,149,453 pairs; the documented 77,427,422 is 94.3% of it (2.83 pairs
per usable cluster). The shortfall of 4,722,031 pairs (0.17 per usable cluster) is what
the clusters with only 2 or 3 distinct questions (1 or 2 pairs instead of 3) give up:
8.6% of them with 2 distinct questions, or 17.2% with 3, or a mix. A cap of 2 gives at
most 54.8M; a cap of 4 adds one pair to the cap-3 count for every cluster with 5 or more
distinct questions (most of them), far above. So 3 is the default that lands near the
total. The exact count depends on the cluster-size distribution of the full release, which
the README does not publish; the manifest reports the difference.

Why a chain ranked by hash: the pairs must not depend on the order of items in the line
or of lines in the files (deterministic output), and must not favour the first
paraphrases users typed. A hash rank is a fixed pseudo-random choice that needs no state
and is O(n) for clusters of thousands of questions (only the top ``cap + 1`` are kept).
A chain uses ``cap + 1`` distinct questions for ``cap`` pairs, so the small clusters still
give ``n - 1`` pairs.

Source options (``--source-option wikianswers.<key>=<value>``):
    ``pairs_per_cluster``  the cap: at most this many pairs per cluster (default 3, >= 1).
    ``seed``               a string mixed into the hash rank; another seed picks other
                           pairs from the same clusters (default empty).
"""
from __future__ import annotations

import hashlib
import heapq

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_text
from pipelines.corpus.rejects import REJECTED, rejected
from pipelines.corpus.schema import ROWS_PER_TABLE, gather_columns, make_rows
from pipelines.corpus.source import Source, SourceContext, SourceOutput, positive_int
from pipelines.engine import ReadFiles, files, text_records

DATASET = "wikianswers"
DEFAULT_PAIRS_PER_CLUSTER = 3
QUESTION, ANSWER = "q", "a"


# -- parsing ---------------------------------------------------------------------------

def parse_cluster(line: str) -> tuple[list[str], list[str], list[tuple[int, str]]]:
    """Split one cluster line into its questions, answers and malformed items.

    Args:
        line: the line without its line ending.
    Returns:
        ``(questions, answers, malformed)``: the texts of the ``q:`` and ``a:`` items in
        line order (empty ones left out), and ``(item_number, item)`` for every non-empty
        item without a ``q:``/``a:`` prefix (1-based item numbers).
    """
    questions, answers, malformed = [], [], []
    for number, item in enumerate(line.split("\t"), start=1):
        if not item.strip():
            continue
        prefix, colon, text = item.partition(":")
        kind = prefix.strip().lower()
        if not colon or kind not in (QUESTION, ANSWER):
            malformed.append((number, item))
        elif text.strip():
            (questions if kind == QUESTION else answers).append(text)
    return questions, answers, malformed


# -- pair rules ------------------------------------------------------------------------

def distinct_questions(questions: list[str]) -> list[tuple[str, str]]:
    """The distinct questions of a cluster, as ``(key, text)`` sorted by key.

    Project rule: exact duplicates and duplicates that differ only in case or whitespace
    are one question (users re-typed the same question; keeping both would make pairs of
    a question with itself). Of the variants of one question the smallest normalised text
    is kept, so the result does not depend on the order of the items.
    """
    best: dict[str, str] = {}
    for question in questions:
        text = normalize_text(question)
        key = text.casefold()
        if key and (key not in best or text < best[key]):
            best[key] = text
    return sorted(best.items())


def question_rank(key: str, seed: str = "") -> tuple[bytes, str]:
    """Sort key of a question in :func:`cluster_pairs`: a hash of the seed and the
    question's key (the key itself breaks the practically impossible tie)."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode("utf-8"), digest_size=8)
    return digest.digest(), key


def cluster_pairs(distinct: list[tuple[str, str]], pairs_per_cluster: int = DEFAULT_PAIRS_PER_CLUSTER,
                  seed: str = "") -> list[tuple[str, str]]:
    """wikianswers: the (question, paraphrased question) pairs of one cluster.

    Project rule: rank the distinct questions by :func:`question_rank`, keep the first
    ``pairs_per_cluster + 1`` and chain them: (r0, r1), (r1, r2), ... So a cluster with n
    distinct questions gives ``min(n - 1, pairs_per_cluster)`` pairs, the choice depends
    only on the cluster's questions (never on their order), and a huge cluster costs one
    pass. The default cap of 3 lands near the documented 77.4M pairs; the arithmetic is
    in the module docstring.

    Args:
        distinct: the cluster's questions from :func:`distinct_questions`.
        pairs_per_cluster: the cap (>= 1).
        seed: mixed into the hash rank; another seed picks other pairs.
    Returns:
        ``(anchor, positive)`` texts; empty when there are fewer than 2 questions.
    """
    chosen = heapq.nsmallest(pairs_per_cluster + 1, distinct, key=lambda kv: question_rank(kv[0], seed))
    return [(chosen[i][1], chosen[i + 1][1]) for i in range(len(chosen) - 1)]


# -- reading ---------------------------------------------------------------------------

class ReadClusters:
    """Read one part file: yield its rows in Arrow tables, and the rejects. Records are
    counted once per file (a counter call per line costs as much as the line's parse).
    A row's texts and record id go straight into the columns of its table (no dict per
    row); the other fields are the same for every row of a file."""

    def __init__(self, pairs_per_cluster: int, seed: str):
        self.pairs_per_cluster = pairs_per_cluster
        self.seed = seed

    def __call__(self, stream, source_file: str):
        counts = {"read": 0, "paired": 0, "removed": 0}
        columns = ([], [], [])  # anchor, positive, record_id

        def table(anchors, positives, record_ids) -> pa.Table:
            return make_rows(DATASET, anchors, positives, source_file=pa.array([source_file] * len(anchors)),
                             record_id=record_ids)

        try:
            yield from gather_columns(self._lines(stream, source_file, counts, columns), columns, table)
        finally:
            accounting.count_read(DATASET, counts["read"])
            accounting.count_paired(DATASET, counts["paired"])
            Metrics.counter(DATASET, "duplicate_questions_removed").inc(counts["removed"])

    def _lines(self, stream, source_file: str, counts: dict, columns: tuple):
        """Append each cluster's rows to ``columns``; yield the rejects, and ``None`` when the
        columns hold a table's rows (see :func:`~pipelines.corpus.schema.gather_columns`)."""
        anchors, positives, record_ids = columns
        for item in text_records(stream, DATASET, source_file):
            if isinstance(item, beam.pvalue.TaggedOutput):
                counts["read"] += 1  # a line that is not UTF-8
                yield item
                continue
            number, text = item
            pairs = yield from self._cluster(text, f"line {number}", source_file, counts)
            for index, (anchor, positive) in enumerate(pairs, start=1):
                anchors.append(anchor)
                positives.append(positive)
                record_ids.append(f"line {number} pair {index}")
            if len(anchors) >= ROWS_PER_TABLE:
                yield None

    def _cluster(self, text: str, record: str, source_file: str, counts: dict):
        """Yield the rejects of one cluster line; return its pairs."""
        questions, _answers, malformed = parse_cluster(text)
        counts["read"] += 1 + len(malformed)  # the cluster and each bad item
        for item_number, item in malformed:
            yield rejected(DATASET, "malformed_item", source_file=source_file,
                           record_id=f"{record} item {item_number}", excerpt=item,
                           detail="cluster item without a 'q:' or 'a:' prefix")
        distinct = distinct_questions(questions)
        counts["removed"] += len(questions) - len(distinct)
        if len(distinct) < 2:
            yield rejected(DATASET, "too_few_questions", source_file=source_file, record_id=record,
                           excerpt=text, detail=f"cluster has {len(distinct)} distinct question(s); "
                                                "a pair needs 2")
            return ()
        counts["paired"] += 1
        return cluster_pairs(distinct, self.pairs_per_cluster, self.seed)


class WikiAnswers(Source):
    name = "wikianswers"
    counts_records = True
    folder = "wikianswers"
    datasets = (DATASET,)
    description = "WikiAnswers paraphrase clusters (OQA), 40 gzip part files"

    def expand(self, pipeline: beam.Pipeline, ctx: SourceContext) -> SourceOutput:
        reader = ReadClusters(
            ctx.option("pairs_per_cluster", DEFAULT_PAIRS_PER_CLUSTER, positive_int),
            ctx.option("seed", ""))
        paths = [path for path, _size in files.list_dir(ctx.source_dir)]
        # A part (1 GB of lines unpacked) is cut into blocks parsed by all workers.
        read = pipeline | "wikianswers/ReadClusters" >> ReadFiles(
            paths, reader, input_root=ctx.input_root, dataset=DATASET, strict=ctx.strict,
            output_type=pa.Table, cut_lines=True)
        # Questions are normalised where they are read (distinct_questions).
        return SourceOutput(rows={DATASET: read.records}, rejects=[read[REJECTED]],
                            normalized=frozenset({DATASET}))


SOURCE = WikiAnswers()
