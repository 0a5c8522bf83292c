"""The functions of the MS MARCO joins: the BM25 triples each query keeps, the triplets of
a hard-negatives line, every text attached by id, the rows of the joined triplets, and the
count of the lookup tables' rows where the joins meet them."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from pipelines.corpus import accounting
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import make_rows

from .parse import (COLLECTION_TABLE, DATASET, ID_TRIPLES, QUERIES_TABLE, SOURCE_NAME,
                    _is_reject)
from .rules import negative_candidates, select_hard_negatives, selection_keys


def select_triples(tables: dict, per_query: int, seed: str):
    """:class:`~pipelines.engine.HashJoin` function of ``qidpidtriples``: the triples the
    queries of one task keep (:func:`rules.keep_per_query`, vectorised), those whose
    negative is judged relevant rejected (``negative_is_positive``), the others with their
    query text (:func:`attach_text`).

    Args:
        tables: ``{"triples": (qid, pos, neg, source_file), "judged": (qid, pid),
            "texts": (qid, text)}``.
        per_query: triples kept per query.
        seed: salt of :func:`rules.selection_key`.
    """
    # A query is taken when a triple of the file names it.
    accounting.count_lookup_rows(SOURCE_NAME, QUERIES_TABLE, tables["texts"]["qid"], [tables["triples"]["qid"]])
    for item in _kept_triples(tables["triples"], tables["judged"], per_query, seed):
        if _is_reject(item):
            yield item
        else:
            yield from attach_text({"triplets": item, "texts": tables["texts"]}, "query")


def _kept_triples(triples: pa.Table, judged: pa.Table, per_query: int, seed: str):
    if triples.num_rows == 0:
        return
    Metrics.counter("msmarco", "triples_read").inc(triples.num_rows)
    # A triple repeated verbatim is one candidate (a build reads one triples file).
    distinct = triples.group_by(["qid", "pos", "neg", "source_file"], use_threads=False).aggregate([])
    keys = selection_keys(seed, *(distinct[name].to_numpy() for name in ("qid", "pos", "neg")))
    ordered = distinct.append_column("_key", pa.array(keys, pa.uint64())).sort_by(
        [("qid", "ascending"), ("_key", "ascending"), ("pos", "ascending"), ("neg", "ascending")])
    qids = ordered["qid"].to_numpy()
    starts = np.flatnonzero(np.r_[True, qids[1:] != qids[:-1]])
    rank = np.arange(len(qids)) - np.repeat(starts, np.diff(np.r_[starts, len(qids)]))
    kept = ordered.filter(pa.array(rank < per_query)).drop_columns(["_key"])
    Metrics.counter("msmarco", "triples_kept").inc(kept.num_rows)
    accounting.count_skipped(DATASET, "beyond_query_cap", triples.num_rows - kept.num_rows)
    if judged.num_rows:
        marks = judged.group_by(["qid", "pid"], use_threads=False).aggregate([])
        marks = marks.append_column("_judged", pa.array(np.ones(marks.num_rows, dtype=bool)))
        kept = kept.join(marks, keys=["qid", "neg"], right_keys=["qid", "pid"],
                         join_type="left outer", use_threads=False)
        relevant = pc.is_valid(kept["_judged"])
        for triplet in kept.filter(relevant).drop_columns(["_judged"]).to_pylist():
            record_id = f"{triplet['qid']}/{triplet['pos']}/{triplet['neg']}"
            yield rejected(DATASET, "negative_is_positive", source_file=triplet["source_file"],
                           record_id=record_id, excerpt={**triplet, "record_id": record_id},
                           detail="the negative passage is judged relevant for the query in the qrels")
        kept = kept.filter(pc.invert(relevant)).drop_columns(["_judged"])
    yield kept.select(ID_TRIPLES.names)


def _first_line(lines: list) -> tuple[dict, list]:
    lines = sorted(lines, key=lambda line: (line["source_file"], line["line"]))
    return lines[0], lines[1:]


def _hard_negative_triplets(element, systems, per_positive: int, seed: str):
    qid, grouped = element
    lines = list(grouped["line"])
    if lines:  # a judged query without mined negatives is not a candidate
        yield from _line_triplets(qid, lines, list(grouped["judged"]), systems, per_positive, seed)


def _line_triplets(qid: int, lines: list, judged: list, systems, per_positive: int, seed: str):
    line, repeated = _first_line(lines)
    for extra in repeated:
        # the whole line is one record
        yield rejected(DATASET, "duplicate_query_line", counts_as_read=True,
                       source_file=extra["source_file"],
                       record_id=f"line {extra['line']}",
                       detail=f"qid {qid} already has line {line['line']} of {line['source_file']}",
                       excerpt={"qid": qid, "pos": extra["pos"]})
    pairs = select_hard_negatives(qid, line["pos"], line["neg"], judged,
                                  systems=systems, per_positive=per_positive, seed=seed)
    candidates = len(set(line["pos"])) * len(negative_candidates(line["pos"], line["neg"], judged, systems))
    # A line without any candidate is one record (rejected); otherwise each candidate is.
    accounting.count_read(DATASET, max(candidates, 1))
    accounting.count_skipped(DATASET, "beyond_positive_cap", candidates - len(pairs))
    if not pairs:
        yield rejected(DATASET, "no_negative", source_file=line["source_file"],
                       record_id=f"line {line['line']}", excerpt={"qid": qid, "pos": line["pos"]},
                       detail="no mined negative left once the query's relevant passages are removed")
    for positive, negative in pairs:
        yield {"qid": qid, "pos": positive, "neg": negative, "source_file": line["source_file"]}


# How each join step finds its id and names what it adds (field, reasons when absent /
# ambiguous, what the id is called in messages).
_JOINS = {
    "query": ("qid", "query", "query_missing", "duplicate_query_id", "query id"),
    "positive": ("pos", "positive", "positive_missing", "duplicate_passage_id", "positive pid"),
    "negative": ("neg", "negative", "negative_missing", "duplicate_passage_id", "negative pid"),
}


def join_text(tables: dict, step: str):
    """:class:`~pipelines.engine.HashJoin` function of a text join: :func:`attach_text`, after
    counting the task's rows of the lookup table
    (:func:`~pipelines.corpus.accounting.count_lookup_rows`) in the join that reads it
    first: the query join counts ``queries.train.tsv``; the negative join counts
    ``collection.tsv``, with the triplets' positives as a side of its own
    (``tables["positives"]``), since the positive join, which reuses the same passages,
    meets them in other tasks.
    """
    if step == "query":
        accounting.count_lookup_rows(SOURCE_NAME, QUERIES_TABLE, tables["texts"]["qid"], [tables["triplets"]["qid"]])
    elif step == "negative":
        accounting.count_lookup_rows(SOURCE_NAME, COLLECTION_TABLE, tables["texts"]["pid"],
                                     [tables["triplets"]["neg"], tables["positives"]["pos"]])
    yield from attach_text(tables, step)


def attach_text(tables: dict, step: str):
    """:class:`~pipelines.engine.HashJoin` function: give every triplet of one task the text
    of its id for ``step`` (``query``, ``positive`` or ``negative``), or reject it when the
    id has no text (``*_missing``) or several different ones (``duplicate_*_id``).

    The triplets keep their order and columns; only the text column is new (a ``take``
    from the task's texts), so the texts already attached are not copied again.

    Args:
        tables: ``{"triplets": (qid, pos, neg, source_file, texts so far), "texts": (id, text)}``.
        step: a key of ``_JOINS``.
    """
    id_field, text_field, missing, ambiguous, what = _JOINS[step]
    triplets, texts = tables["triplets"], tables["texts"]
    if triplets.num_rows == 0:
        return
    ids, counts, text = _texts_per_id(texts)
    position = pc.index_in(triplets[id_field], value_set=ids)
    count = (pc.if_else(pc.is_valid(position), 1, 0) if counts is None
             else pc.fill_null(pc.take(counts, position), 0))
    found = pc.equal(count, 1)
    if not pc.all(found).as_py():
        lost = triplets.select(["qid", "pos", "neg", "source_file"]).append_column("count", count)
        for triplet in lost.filter(pc.invert(found)).to_pylist():
            count_of_id = triplet.pop("count")
            record_id = f"{triplet['qid']}/{triplet['pos']}/{triplet['neg']}"
            detail = (f"{what} {triplet[id_field]} not found" if not count_of_id else
                      f"{what} {triplet[id_field]} has {count_of_id} different texts")
            yield rejected(DATASET, missing if not count_of_id else ambiguous,
                           source_file=triplet["source_file"], record_id=record_id, detail=detail,
                           excerpt={k: triplet[k] for k in ("qid", "pos", "neg")})
        triplets, position = triplets.filter(found), position.filter(found)
    yield triplets.append_column(text_field, pc.take(text, position))


def _texts_per_id(texts: pa.Table) -> tuple[pa.Array, pa.Array | None, pa.Array]:
    """``(ids, text counts, texts)`` of one task's ``(id, text)`` table: per distinct id the
    number of different texts given for it (``None`` when every id is given once) and a text.

    Ids are nearly always given once, so texts are compared (hashed) only for the ids that
    appear more than once: an id given twice with the same text counts one text.
    """
    text_id = texts.schema.names[0]
    ids = texts[text_id].combine_chunks() if texts.num_rows else pa.array([], pa.int64())
    # Whether any id repeats, from the sorted ids (a tenth of a group_by's time); the texts
    # stay in their chunks (take gathers them).
    ordered = np.sort(ids.to_numpy(zero_copy_only=False))
    if not (ordered[1:] == ordered[:-1]).any():
        return ids, None, texts["text"]
    texts = texts.combine_chunks()
    counts = texts.group_by(text_id, use_threads=False).aggregate([([], "count_all")])
    repeated = counts.filter(pc.greater(counts["count_all"], 1))[text_id]
    once = texts.filter(pc.invert(pc.is_in(texts[text_id], repeated)))
    several = texts.filter(pc.is_in(texts[text_id], repeated))
    distinct = (several.group_by([text_id, "text"], use_threads=False).aggregate([])
                .group_by(text_id, use_threads=False).aggregate([("text", "count"), ("text", "min")]))
    per_id = pa.concat_tables([
        pa.table({text_id: once[text_id], "text_count": pa.array(np.ones(once.num_rows, np.int64)),
                  "text": once["text"]}),
        distinct.select([text_id, "text_count", "text_min"]).rename_columns([text_id, "text_count", "text"])
        .cast(pa.schema([(text_id, pa.int64()), ("text_count", pa.int64()), ("text", pa.string())])),
    ]).combine_chunks()
    return per_id[text_id].chunk(0), per_id["text_count"].chunk(0), per_id["text"]


def triplet_rows(table: pa.Table) -> pa.Table:
    """msmarco_triplets rows from joined triplets: (query text, relevant passage text,
    negative passage text); the record id is ``qid/positive pid/negative pid``. The texts
    were normalised where they were read."""
    accounting.count_paired(DATASET, table.num_rows)
    as_text = [pc.cast(table[name], pa.string()) for name in ("qid", "pos", "neg")]
    return make_rows(
        DATASET, table["query"], table["positive"], table["negative"],
        source_file=pc.cast(table["source_file"], pa.string()),
        record_id=pc.binary_join_element_wise(*as_text, "/"))
