"""Every dataset of the corpus: documented total, reference mix entry, tolerance, source.

This is the single list the build, the count check and ``data_config.json`` read. A
dataset is *implemented* when its source module ``pipelines.sources.<source>`` exists
and exposes ``SOURCE``; the others are still registered and reported as
"not implemented", never left out.

Documented totals are the rows of the model card's training-data table
(``docs/corpus-spec.md``). Weights are those of the reference mix
``multi-qa_v1.data_config.json``; StackExchange weights are per site and live in
``pipelines/sources/stackexchange/reference_sites.json``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

from pipelines.corpus.normalize import TextPolicy

# The model card's "Total" line. Its rows add up to more (see reconcile_card_total).
CARD_TOTAL = 214_988_242


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the corpus.

    Attributes:
        id: dataset id; also the output folder and shard name prefix.
        source: source module under ``pipelines.sources`` that produces it.
        pair: what a row is, in words.
        documented_total: the model card's count.
        reference_name: the file name in the reference mix (``None`` when absent).
        weight: the dataset's weight in the reference mix (sum over sites for
            StackExchange); 0 when the reference mix does not use it.
        columns: 2 for pairs, 3 for triplets (anchor, positive, negative).
        tolerance: relative difference from the documented total still judged a match.
        drifts: the upstream release keeps changing, so a difference beyond the tolerance
            is reported as drift (a warning), not as a mismatch.
        notes: known discrepancies of the documented number, shown in the report.
        text_policy: the length rules applied to every text of a row.
        subsets: rows carry the part of the source they come from (the StackExchange
            site) in ``subset``, and the manifest counts rows per subset.
        mix_per_subset: each subset (small ones pooled) gets shards of its own and its
            own entry, with its own weight, in the training mix.
        repeated_texts: row columns whose texts repeat across many rows (MS MARCO's query
            and relevant passage, once per negative; the passage every PAQ or SQuAD question
            about it is paired with). Rows sharing the first one's text are
            written to the same shard (spread over it, not side by side), and these columns
            are dictionary-encoded in the Parquet shards, so a repeated text is stored once
            per row group instead of once per row.
        on_card: the dataset is a row of the model card's training-data table (the
            original corpus); a dataset added beyond it is left out of the card's totals.
        licence: id of the terms the dataset is published under
            (:mod:`pipelines.corpus.licences`); every dataset names one.
    """

    id: str
    source: str
    pair: str
    documented_total: int
    reference_name: str | None
    weight: int
    columns: int = 2
    tolerance: float = 0.02
    drifts: bool = False
    notes: tuple[str, ...] = ()
    text_policy: TextPolicy = field(default_factory=TextPolicy)
    subsets: bool = False
    mix_per_subset: bool = False
    repeated_texts: tuple[str, ...] = ()
    on_card: bool = True
    licence: str = ""

    @property
    def is_triplet(self) -> bool:
        return self.columns == 3


_SE_DRIFT = ("StackExchange dumps grow every quarter and the 2024 dumps changed the tag format; "
             "a difference from the 2021 count is drift, judged per site against the reference mix.")

DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        "stackexchange_title_body", "stackexchange", "(question title, question body)",
        25_316_456, "stackexchange_title_body/<site>.jsonl.gz", 1719,
        tolerance=0.10, drifts=True, notes=(_SE_DRIFT,), subsets=True, mix_per_subset=True,
        # The 20..4,096 character body rule is the pair rule itself (stackexchange module).
        text_policy=TextPolicy(min_chars=1, max_chars=None),
        licence="cc-by-sa",
    ),
    DatasetSpec(
        "stackexchange_title_answer", "stackexchange", "(question title, best answer body)",
        21_396_559, "stackexchange_Title_Answer/<site>.jsonl.gz", 1512,
        tolerance=0.10, drifts=True, notes=(_SE_DRIFT,), subsets=True, mix_per_subset=True,
        text_policy=TextPolicy(min_chars=1, max_chars=None),
        licence="cc-by-sa",
    ),
    DatasetSpec(
        "stackexchange_duplicate_questions", "stackexchange", "(title, title of its duplicate)",
        304_525, "stackexchange_duplicate_questions_title_title.jsonl.gz", 69,
        tolerance=0.10, drifts=True, notes=(_SE_DRIFT,), subsets=True,
        licence="cc-by-sa",
    ),
    DatasetSpec(
        "msmarco_triplets", "msmarco", "(query, relevant passage, hard-negative passage)",
        17_579_773, "msmarco-query_passage_negative_v2.jsonl.gz", 1000, columns=3,
        notes=("Later uploads have other counts (499,184 per-query lines; an earlier mix used "
               "9,144,553 triplets); the number of negatives per query is a project rule.",),
        repeated_texts=("anchor", "positive"),
        licence="msmarco-terms",
    ),
    DatasetSpec(
        "paq", "paq", "(generated question, Wikipedia passage)",
        64_371_441, "PAQ_pairs.jsonl.gz", 150, tolerance=0.01, repeated_texts=("positive",),
        licence="paq-cc-by-sa-3.0",
    ),
    DatasetSpec(
        "wikianswers", "wikianswers", "(question, paraphrased question)",
        77_427_422, "WikiAnswers_pairs.jsonl.gz", 150,
        notes=("A later upload has 27,383,151 sets; which pairs a cluster gives is a project rule.",),
        licence="wikianswers-unstated",
    ),
    DatasetSpec(
        "gooaq", "gooaq", "(search query, answer snippet)",
        3_012_496, "gooaq_pairs.jsonl.gz", 451,
        licence="gooaq-terms",
    ),
    DatasetSpec(
        "amazon_qa", "amazon_qa", "(product question, answer)",
        2_448_839, "amazon-qa-train-pairs.jsonl.gz", 451,
        licence="amazon-qa-unstated",
    ),
    DatasetSpec(
        "yahoo_answers_title_answer", "yahoo_answers", "(title, best answer)",
        1_198_260, "yahoo_answers_title_answer.jsonl.gz", 226, tolerance=0.01,
        licence="yahoo-webscope-terms",
    ),
    DatasetSpec(
        "yahoo_answers_question_answer", "yahoo_answers", "(question text, best answer)",
        681_164, None, 0, tolerance=0.01,
        notes=("On the model card but absent from the reference mix (weight 0 here); its 681,164 "
               "rows are exactly the gap between the card's rows and its stated total.",),
        licence="yahoo-webscope-terms",
    ),
    DatasetSpec(
        "yahoo_answers_title_question", "yahoo_answers", "(title, question text)",
        659_896, "yahoo_answers_title_question.jsonl.gz", 149, tolerance=0.01,
        licence="yahoo-webscope-terms",
    ),
    DatasetSpec(
        "searchqa", "searchqa", "(Jeopardy clue, top-5 search snippets)",
        582_261, "searchQA_question_top5_snippets_merged.jsonl.gz", 263, tolerance=0.01,
        notes=("The documented 582,261 exceeds the 216,757 raw clues; unresolved.",),
        licence="searchqa-unstated",
    ),
    DatasetSpec(
        "eli5", "eli5", "(question title, answer)",
        325_475, "eli5_question_answer.jsonl.gz", 147, tolerance=0.05,
        licence="eli5-unstated",
    ),
    DatasetSpec(
        "quora_triplets", "quora", "(question, duplicate, hard negative)",
        103_663, "quora_duplicates_triplets.jsonl.gz", 47, columns=3,
        notes=("A later upload has 101,762 triplets.",),
        licence="quora-terms",
    ),
    DatasetSpec(
        "natural_questions", "natural_questions", "(query, Wikipedia paragraph)",
        100_231, "NQ-train_pairs.jsonl.gz", 46,
        licence="cc-by-sa-3.0",
    ),
    DatasetSpec(
        "squad", "squad", "(question, paragraph)",
        87_599, "squad_pairs.jsonl.gz", 40, tolerance=0.0, repeated_texts=("positive",),
        notes=("87,599 is SQuAD v1.1 train; SQuAD 2.0 train has about 86,821 answerable "
               "questions, so a v2.0 build differs by design.",),
        licence="cc-by-sa-4.0",
    ),
    DatasetSpec(
        "trivia_qa", "trivia_qa", "(question, evidence passage)",
        73_346, "TriviaQA_pairs.jsonl.gz", 34, tolerance=0.05,
        licence="triviaqa-unstated",
    ),
)

_BY_ID = {spec.id: spec for spec in DATASETS}


def get(dataset_id: str) -> DatasetSpec:
    """Return the spec of ``dataset_id``; raise ``KeyError`` naming the known ids."""
    try:
        return _BY_ID[dataset_id]
    except KeyError:
        raise KeyError(
            f"unknown dataset id {dataset_id!r}; known ids: {', '.join(_BY_ID)}") from None


def dataset_ids() -> list[str]:
    return [spec.id for spec in DATASETS]


def load_source(source: str):
    """Return the ``SOURCE`` object of ``pipelines.sources.<source>``, or ``None``
    when the source module does not exist yet (the dataset is "not implemented")."""
    module_name = f"pipelines.sources.{source}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    return getattr(module, "SOURCE", None)


def is_implemented(dataset_id: str) -> bool:
    source = load_source(get(dataset_id).source)
    return source is not None and dataset_id in source.datasets


def reconcile_card_total() -> dict:
    """Compare the card's rows with its stated total and explain the gap.

    Returns a dict with the row sum, the stated total, the gap and the datasets whose
    documented counts account for it exactly (those absent from the reference mix).
    """
    card = [spec for spec in DATASETS if spec.on_card]
    rows_sum = sum(spec.documented_total for spec in card)
    gap = rows_sum - CARD_TOTAL
    absent = [spec for spec in card if spec.reference_name is None]
    explained = sum(spec.documented_total for spec in absent) == gap
    return {
        "card_rows_sum": rows_sum,
        "card_total": CARD_TOTAL,
        "gap": gap,
        "explained_by": [spec.id for spec in absent] if explained else [],
        "explanation": (
            f"the rows add up to {rows_sum:,}, {gap:,} more than the stated total {CARD_TOTAL:,}; "
            + (f"the gap is exactly {', '.join(s.id for s in absent)}, which the reference mix "
               "does not use" if explained else "the gap is not explained by any dataset")
        ),
    }
