"""The PAQ pair rules (see the package docstring) and the functions of the two joins that
apply them: the filtered list meets the metadata, then the questions meet their passages."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.corpus import accounting
from pipelines.corpus.normalize import normalize_column
from pipelines.corpus.rejects import rejected
from pipelines.corpus.schema import gather_tables, make_row, make_rows

from .parse import (DATASET, EXCERPT_CHARS, LIST_TABLE, PASSAGES_TABLE, QUESTIONS, SOURCE_NAME,
                    _is_reject, passage_key, passage_keys)

PASSAGE_RULES = ("first", "all")


# -- pair rules -------------------------------------------------------------------------

def question_is_candidate(in_filtered_list: bool, filtered_only: bool) -> bool:
    """Whether a metadata record is a candidate question.

    **Project rule.** The dataset is PAQ as released: the 64.9M questions of
    ``PAQ.filtered.jsonl``, which passed PAQ's global consistency filter. The metadata
    file describes the same questions, but the filtered list is the authority on which
    questions are in PAQ, so by default a metadata question counts only when it is in the
    list. ``filtered_only=false`` trusts the metadata file alone (for runs without the
    question list).
    """
    return in_filtered_list or not filtered_only


def choose_passages(passage_ids: list[str], rule: str) -> list[str]:
    """The passage ids of one question that give a pair.

    **Project rule.** PAQ merged identical questions generated from several passages
    (and by both answer extractors) into one record whose ``answers`` lists every
    (passage, answer span). The card counts about one pair per question, so by default
    (``first``) a question is paired with the passage of its first ``answers`` entry,
    the one upstream lists first; this depends only on the record, never on processing
    order. ``all`` gives one pair per distinct passage id (in numeric order) for users
    who want every source passage.
    """
    if rule == "all":
        return sorted(set(passage_ids), key=int)
    return passage_ids[:1]


def question_passage_pair(question: dict, passage_id: str, passage_text: str) -> dict:
    """paq: (generated question as released, text of the passage it was generated from)."""
    accounting.count_paired(DATASET)
    return make_row(DATASET, question["question"], passage_text,
                    source_file=question["source_file"],
                    record_id=f"line {question['line']}, passage {passage_id}")


# -- joins ------------------------------------------------------------------------------
# Both joins are :class:`~pipelines.engine.HashJoin`s: every side spilled in runs by the
# hash of its key, one task per hash range; a task groups its own rows by the joined text
# (bounded by the task's size, whatever the input's).

def _rows_by(table: pa.Table, column: str) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        grouped.setdefault(row[column], []).append(row)
    return grouped


def select_candidates(tables: dict, filtered_only: bool, rule: str):
    """:class:`~pipelines.engine.HashJoin` function of the filtered list and the metadata (by
    question): the outcome of :func:`candidate_outcomes` for every question of the task,
    each candidate record as one :data:`QUESTIONS` row per passage :func:`choose_passages`
    picks.

    The usual case (a listed question with one usable record, the ``first`` passage) is
    decided over the whole task at once; questions without a record, records without a
    usable passage id and the ``all`` rule go record by record.

    Args:
        tables: ``{"listed": LISTED, "metadata": METADATA_RECORDS}``.
        filtered_only: option ``filtered_only`` (see :func:`question_is_candidate`).
        rule: option ``passages`` (see :func:`choose_passages`).
    """
    listed, metadata = tables["listed"], tables["metadata"]
    if listed.num_rows:
        # Every line of the list is taken: it selects its question's metadata records, or
        # is itself a record (no_metadata).
        accounting.count_input_rows(SOURCE_NAME, LIST_TABLE, None, listed.num_rows)
    unanswered = pc.invert(pc.is_in(listed["question"], metadata["question"]))
    in_list = pc.is_in(metadata["question"], listed["question"])
    candidate = in_list if filtered_only else pa.array([True] * metadata.num_rows, pa.bool_())
    skipped = metadata.num_rows - pc.sum(candidate).as_py() if metadata.num_rows else 0
    if skipped:
        accounting.count_read(DATASET, skipped)
        accounting.count_skipped(DATASET, "not_in_filtered_list", skipped)
    simple = pc.and_(candidate, pc.is_null(metadata["reason"]))
    one_by_one = pc.and_(candidate, pc.invert(simple))
    if rule != "first":
        simple, one_by_one = pc.and_(simple, False), candidate
    if pc.any(unanswered).as_py() or pc.any(one_by_one).as_py():
        # Rare: listed questions without a record, records without a passage, rule "all".
        waiting, records = _rows_by(listed.filter(unanswered), "question"), _rows_by(metadata.filter(one_by_one), "question")
        items = (item for question in sorted(waiting.keys() | records.keys())
                 for item in candidate_outcomes(question, waiting.get(question, []),
                                                records.get(question, []), filtered_only=False))
        yield from gather_tables(
            (row for item in items for row in ([item] if _is_reject(item) else _by_passage(item, rule))),
            QUESTIONS)
    chosen = metadata.filter(simple)
    if chosen.num_rows:
        accounting.count_read(DATASET, chosen.num_rows)  # one record per (question, passage)
        first = pc.list_element(chosen["passage_ids"], 0)
        yield pa.table({"key": passage_keys(first),
                        "passage_id": first, "question": chosen["question"],
                        "source_file": chosen["source_file"], "line": chosen["line"]}, schema=QUESTIONS)


def candidate_outcomes(question: str, listed: list[dict], records: list[dict], filtered_only: bool):
    """Candidate metadata records of one question, or their rejects: a listed question
    without any metadata record is ``no_metadata``; a candidate record without a usable
    passage id is rejected with its reason; records of unlisted questions are skipped."""
    if not records:
        for entry in sorted(listed, key=lambda e: (e["source_file"], e["line"])):
            yield rejected(DATASET, "no_metadata", counts_as_read=True,
                           source_file=entry["source_file"],
                           record_id=f"line {entry['line']}", excerpt=question,
                           detail="question of the filtered list has no record in PAQ.metadata.jsonl")
        return
    if not question_is_candidate(bool(listed), filtered_only):
        accounting.count_read(DATASET, len(records))
        accounting.count_skipped(DATASET, "not_in_filtered_list", len(records))
        return
    for record in sorted(records, key=lambda r: (r["source_file"], r["line"])):
        if record["reason"]:
            yield rejected(DATASET, record["reason"], counts_as_read=True,
                           source_file=record["source_file"],
                           record_id=f"line {record['line']}", detail=record["detail"],
                           excerpt=record["excerpt"])
        else:
            yield record


def _by_passage(record: dict, rule: str):
    chosen = choose_passages(record["passage_ids"], rule)
    accounting.count_read(DATASET, len(chosen))  # one record per (question, passage)
    for passage_id in chosen:
        yield {"key": passage_key(passage_id), "passage_id": passage_id, "question": record["question"],
               "source_file": record["source_file"], "line": record["line"]}


def pair_with_passages(tables: dict, passage_file: str):
    """:class:`~pipelines.engine.HashJoin` function of the questions and the passages (by
    passage id): a row per question whose passage is found (:func:`question_passage_pair`,
    vectorised), the rejects of :func:`passage_outcomes` for the others and for repeated
    passage ids.

    Args:
        tables: ``{"questions": QUESTIONS, "passages": PASSAGE_TEXTS}``.
        passage_file: psgs_w100.tsv as named in rejects.
    """
    passages, questions = tables["passages"], tables["questions"]
    counts = passages.group_by("passage_id", use_threads=False).aggregate([([], "count_all")])
    # A repeated line of an id is taken, being a record (duplicate_passage_id).
    accounting.count_lookup_rows(SOURCE_NAME, PASSAGES_TABLE, counts["passage_id"], [questions["passage_id"]],
                                 rows=pc.sum(counts["count_all"]).as_py() if counts.num_rows else 0)
    repeated = counts.filter(pc.greater(counts["count_all"], 1))["passage_id"]
    if len(repeated):
        # Rare: the ids given more than once, and their questions, go one by one.
        several = pc.is_in(passages["passage_id"], repeated)
        asked = pc.is_in(questions["passage_id"], repeated)
        by_id = _rows_by(passages.filter(several), "passage_id")
        asking = _rows_by(questions.filter(asked), "passage_id")
        yield from gather_tables(
            item for passage_id in sorted(by_id, key=int)
            for item in passage_outcomes(passage_id, by_id[passage_id], asking.get(passage_id, []),
                                         passage_file))
        passages, questions = passages.filter(pc.invert(several)), questions.filter(pc.invert(asked))
    position = pc.index_in(questions["passage_id"], value_set=passages["passage_id"].combine_chunks())
    found = pc.is_valid(position)
    if not pc.all(found).as_py():
        lost = questions.filter(pc.invert(found)).sort_by([("passage_id", "ascending"), ("source_file", "ascending"),
                                                           ("line", "ascending")])
        for question in lost.to_pylist():
            yield from passage_outcomes(question["passage_id"], [], [question], passage_file)
        questions, position = questions.filter(found), position.filter(found)
    if questions.num_rows:
        yield question_passage_rows(questions, pc.take(passages["text"], position))


def question_passage_rows(questions: pa.Table, texts) -> pa.Table:
    """:func:`question_passage_pair` of every row of a :data:`QUESTIONS` table, given the
    (normalised) text of each one's passage; the questions are normalised here."""
    accounting.count_paired(DATASET, questions.num_rows)
    return make_rows(
        DATASET, normalize_column(questions["question"]), texts, source_file=questions["source_file"],
        record_id=pc.binary_join_element_wise(
            "line ", pc.cast(questions["line"], pa.string()), ", passage ", questions["passage_id"], ""))


def passage_outcomes(passage_id: str, passages: list[dict], questions: list[dict], passage_file: str):
    """Rows for every question of one passage id; missing and repeated ids are rejects."""
    passages = sorted(passages, key=lambda p: p["line"])
    for extra in passages[1:]:
        # a passage line, a record only as a reject
        yield rejected(DATASET, "duplicate_passage_id", counts_as_read=True,
                       source_file=passage_file,
                       record_id=f"line {extra['line']}", excerpt=extra["text"][:EXCERPT_CHARS],
                       detail=f"passage id {passage_id} already on line {passages[0]['line']}; "
                              "the first is used")
    for question in sorted(questions, key=lambda q: (q["source_file"], q["line"])):
        if not passages:
            yield rejected(DATASET, "passage_missing", source_file=question["source_file"],
                           record_id=f"line {question['line']}, passage {passage_id}",
                           excerpt=question["question"],
                           detail=f"passage {passage_id} is not in psgs_w100.tsv")
        else:
            yield question_passage_pair(question, passage_id, passages[0]["text"])
