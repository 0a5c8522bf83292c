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


GROUPS = {"askubuntu.com": {"rows": 270_000, "documented": 300_000},
          "small_stackexchanges": {"rows": 40_000, "documented": 50_000},
          "new.stackexchange.com": {"rows": 12_000, "documented": None}}


def test_a_partial_input_is_compared_per_site_group_with_a_reference_count():
    result = verify.judge_partial_input(GROUPS)
    assert result["verdict"] == "partial input" and result["verdict"] not in verify.FAILING_VERDICTS
    assert (result["expected"], result["difference"]) == (350_000, -40_000)
    assert abs(result["relative_difference"] + 40_000 / 350_000) < 1e-12
    assert result["groups_not_compared"] == ["new.stackexchange.com"]


def test_a_partial_input_without_reference_counts_has_no_expected_count():
    for groups in (None, {}, {"x": {"rows": 3, "documented": None}}):
        assert verify.judge_partial_input(groups) == {
            "expected": None, "difference": None, "relative_difference": None, "verdict": "partial input"}


def _manifest(sample: bool, datasets: dict) -> dict:
    return {"run": {"sample": sample}, "datasets": datasets}


def test_the_table_shows_documented_and_expected_and_why_an_input_is_partial():
    partial = {"status": "built", "rows": 19, "documented": 2_448_839, "tolerance": 0.02, "notes": [],
               "input": {"published": False, "reasons": ["20 of 21 required files not in the input (a)"]},
               **verify.judge_partial_input(None)}
    published = {"status": "built", "rows": 87_599, "documented": 87_599, "tolerance": 0.0, "notes": [],
                 "input": {"published": True, "reasons": []}, "expected": 87_599,
                 **verify.judge(87_599, 87_599, 0.0, False)}
    table = verify.format_table(_manifest(False, {"amazon_qa": partial, "squad": published})).splitlines()
    assert table[0].split() == ["dataset", "rows", "documented", "expected", "diff", "rel", "tol", "verdict",
                                "rejected", "accounted", "licence", "commercial"]
    assert table[2].split()[:5] == ["amazon_qa", "19", "2,448,839", "-", "-"]
    assert "partial input" in table[2]
    assert table[3].split()[:4] == ["squad", "87,599", "87,599", "87,599"] and "match" in table[3]
    assert "  amazon_qa: partial input: 20 of 21 required files not in the input (a)" in table
    assert any(line.startswith("documented: the model card's total; expected:") for line in table)


def test_a_sample_table_keeps_its_single_expected_column():
    entry = {"status": "built", "rows": 4, "expected": 4, "documented": 87_599, "tolerance": 0.0,
             "notes": [], **verify.judge_sample({"rows": 4}, {"rows": 4})}
    header = verify.format_table(_manifest(True, {"squad": entry})).splitlines()[0]
    assert header.split()[:4] == ["dataset", "rows", "expected(sample)", "diff"]
