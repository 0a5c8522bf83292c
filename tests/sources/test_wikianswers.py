"""WikiAnswers: cluster parsing, the pair rule, the real OQA excerpt, the sample, bad input."""
import gzip

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.corpus.source import SourceContext
from pipelines.sources import wikianswers as wa
from tests.sources.conservation import run_conserved_build
from tests.sources.source_case import SourceCase

DATASET = "wikianswers"


# -- parse_cluster ------------------------------------------------------------------------

def test_parse_cluster_splits_items_on_the_first_colon_only():
    questions, answers, malformed = wa.parse_cluster(
        "q:What does John 3:16 say?\ta:It says: God so loved the world\tq:Meaning of John 3:16?")
    assert questions == ["What does John 3:16 say?", "Meaning of John 3:16?"]
    assert answers == ["It says: God so loved the world"]
    assert malformed == []


def test_parse_cluster_reports_items_without_prefix_and_ignores_empty_items():
    questions, _answers, malformed = wa.parse_cluster("q:One?\t\tJn 3:16 text\tq:\tno colon here\tq:Two?\t")
    assert questions == ["One?", "Two?"]
    assert malformed == [(3, "Jn 3:16 text"), (5, "no colon here")]


# -- distinct_questions ---------------------------------------------------------------------

def test_distinct_questions_removes_exact_case_and_whitespace_duplicates():
    distinct = wa.distinct_questions([
        "Is a tomato a fruit?", "is a tomato a fruit?", "Is a  tomato a fruit? ", "Is a tomato a fruit?",
        "Is a tomato a vegetable?"])
    assert [text for _key, text in distinct] == ["Is a tomato a fruit?", "Is a tomato a vegetable?"]


def test_distinct_questions_keeps_the_same_variant_whatever_the_order():
    variants = ["is a tomato a fruit?", "IS A TOMATO A FRUIT?", "Is a tomato a fruit?"]
    assert wa.distinct_questions(variants) == wa.distinct_questions(list(reversed(variants)))
    assert wa.distinct_questions(variants)[0][1] == "IS A TOMATO A FRUIT?"  # smallest text


# -- cluster_pairs ----------------------------------------------------------------------------

def _distinct(n):
    return wa.distinct_questions([f"Question number {i}?" for i in range(n)])


@pytest.mark.parametrize("n, cap, expected", [(0, 3, 0), (1, 3, 0), (2, 3, 1), (3, 3, 2), (4, 3, 3),
                                              (25, 3, 3), (2000, 3, 3), (25, 1, 1), (25, 10, 10)])
def test_cluster_pairs_gives_min_of_n_minus_1_and_the_cap(n, cap, expected):
    assert len(wa.cluster_pairs(_distinct(n), cap)) == expected


def test_cluster_pairs_is_a_chain_of_distinct_questions():
    pairs = wa.cluster_pairs(_distinct(25), 3)
    for (_a, positive), (anchor, _p) in zip(pairs, pairs[1:]):
        assert positive == anchor
    used = [pairs[0][0]] + [positive for _a, positive in pairs]
    assert len(set(used)) == 4


def test_cluster_pairs_seed_picks_other_questions():
    distinct = _distinct(50)
    assert wa.cluster_pairs(distinct, 3, seed="a") != wa.cluster_pairs(distinct, 3, seed="b")
    assert wa.cluster_pairs(distinct, 3, seed="a") == wa.cluster_pairs(distinct, 3, seed="a")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet="abcAB ?", min_size=1, max_size=8), min_size=0, max_size=12),
       st.randoms(use_true_random=False))
def test_cluster_pairs_do_not_depend_on_item_order(questions, random):
    shuffled = list(questions)
    random.shuffle(shuffled)
    assert (wa.cluster_pairs(wa.distinct_questions(questions), 3)
            == wa.cluster_pairs(wa.distinct_questions(shuffled), 3))


def test_pairs_per_cluster_option_must_be_positive():
    ctx = SourceContext(input_root="/x", source_dir="/x/wikianswers", datasets=(DATASET,),
                        options={"pairs_per_cluster": "0"})
    with pytest.raises(ValueError, match="at least 1"):
        ctx.option("pairs_per_cluster", 3, wa.positive_int)


# -- builds --------------------------------------------------------------------------------------

REAL_QUESTIONS = {
    "How many muslims make up indias 1 billion population?",
    "How many of india's population are muslim?",
    "How many populations of muslims in india?",
    "What is population of muslims in india?",
}


def test_real_oqa_excerpt_gives_a_chain_through_its_four_questions(tmp_path, upstream_samples):
    # README_example_cluster.txt: 4 distinct questions and one answer. With the cap of 3
    # every question is used: 3 pairs forming a chain; the answer is never a pair text.
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET])
    rows = result.rows[DATASET]
    assert result.manifest["datasets"][DATASET]["rows"] == 3
    assert result.reasons(DATASET) == {}
    by_pair = sorted(rows, key=lambda r: r["record_id"])
    assert [r["record_id"] for r in by_pair] == ["line 1 pair 1", "line 1 pair 2", "line 1 pair 3"]
    assert {r["source_file"] for r in rows} == {"wikianswers/README_example_cluster.txt"}
    for first, second in zip(by_pair, by_pair[1:]):
        assert first["positive"] == second["anchor"]
    used = {by_pair[0]["anchor"]} | {r["positive"] for r in by_pair}
    assert used == REAL_QUESTIONS


def test_real_oqa_excerpt_with_a_cap_of_one(tmp_path, upstream_samples):
    result = run_conserved_build(tmp_path / "out", input_root=upstream_samples, datasets=[DATASET],
                       source_options={"wikianswers": {"pairs_per_cluster": "1"}})
    (row,) = result.rows[DATASET]
    assert {row["anchor"], row["positive"]} <= REAL_QUESTIONS and row["anchor"] != row["positive"]


def test_bundled_sample_matches_hand_worked_counts(tmp_path):
    result = run_conserved_build(tmp_path / "out", sample=True, datasets=[DATASET])
    entry = result.manifest["datasets"][DATASET]
    assert entry["verdict"] == "match", entry.get("problems")
    assert ("What is the verse John 3:16 about?", "What does John 3:16 say?", None) in result.pairs(DATASET) \
        or ("What does John 3:16 say?", "What is the verse John 3:16 about?", None) in result.pairs(DATASET)


def test_bad_files_end_in_counted_rejects(tmp_path):
    folder = tmp_path / "in" / "wikianswers"
    folder.mkdir(parents=True)
    # Named .gz but plain text: sniffed, read as it is.
    (folder / "part-00000.gz").write_bytes(b"q:Why is the sky blue?\tq:What makes the sky blue?\n\t\t\n")
    # Gzip cut short: the file is an unreadable_file reject, the run goes on.
    (folder / "part-00001.gz").write_bytes(gzip.compress(b"\n" * 100_000)[:-12])
    (folder / "part-00002.gz").write_bytes(b"")
    # Not text at all: lines that are not UTF-8.
    (folder / "part-00003").write_bytes(b"\xff\xfe\x00\x81garbage\n\x89PNG\r\n")
    # UTF-16 text: NUL bytes everywhere, no q:/a: item survives.
    (folder / "part-00004").write_bytes("q:Hello?\tq:Hi?\n".encode("utf-16-le"))
    result = run_conserved_build(tmp_path / "out", input_root=tmp_path / "in", datasets=[DATASET])
    assert result.pairs(DATASET) == {("Why is the sky blue?", "What makes the sky blue?", None)} \
        or result.pairs(DATASET) == {("What makes the sky blue?", "Why is the sky blue?", None)}
    reasons = result.reasons(DATASET)
    assert reasons["unreadable_file"] == 1
    assert reasons["empty_file"] == 1
    assert reasons["bad_encoding"] == 2
    # UTF-16: line 1 has two items whose prefixes are "q\0" (malformed) and no question;
    # line 2 is the NUL byte after the newline, one malformed item and no question.
    assert reasons["malformed_item"] == 3
    assert reasons["too_few_questions"] == 2
    assert len(reasons) == 5


class TestWikianswersSample(SourceCase):
    SOURCE = "wikianswers"
    ROWS = {"wikianswers": 12}
