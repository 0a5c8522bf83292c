"""The exact check of a sample build against its hand-worked counts."""
from pipelines.corpus import verify

MEASURED = {"rows": 5, "rejected": {"identical_texts": 1}, "skipped": {"empty_content": 1, "empty_title": 1}}


def test_a_sample_matches_only_when_rows_rejects_and_skips_all_match():
    assert verify.judge_sample(MEASURED, dict(MEASURED))["verdict"] == "match"
    for changed in ({"rows": 6}, {"rejected": {}}, {"skipped": {"empty_content": 2, "empty_title": 1}}):
        result = verify.judge_sample(MEASURED, {**MEASURED, **changed})
        assert result["verdict"] == "mismatch"
        assert len(result["problems"]) == 1 and result["problems"][0].split()[0] == next(iter(changed))


def test_counts_the_expected_file_leaves_out_are_not_compared():
    assert verify.judge_sample(MEASURED, {"rows": 5})["verdict"] == "match"
