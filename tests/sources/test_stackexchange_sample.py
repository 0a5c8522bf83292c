"""The bundled StackExchange sample builds to its hand-worked counts and pairs."""
from tests.helpers import run_build


def test_sample_build_matches_hand_worked_counts(tmp_path):
    result = run_build(tmp_path / "out", sample=True,
                       datasets=["stackexchange_title_body", "stackexchange_title_answer",
                                 "stackexchange_duplicate_questions"])
    for dataset_id in ("stackexchange_title_body", "stackexchange_title_answer",
                       "stackexchange_duplicate_questions"):
        entry = result.manifest["datasets"][dataset_id]
        assert entry["verdict"] == "match", entry.get("problems")
    assert ("Is cold brew \"less acidic\" than hot coffee?",
            "Titratable acidity is lower in cold brew, pH is about the same.",
            None) in result.pairs("stackexchange_title_answer")
