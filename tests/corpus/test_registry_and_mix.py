"""Registry and training mix against the corpus spec and the reference mix."""
import json
import re
from pathlib import Path

import pytest

from pipelines.corpus import registry
from pipelines.corpus.mix import derived_site_weight, reference_mix

REPO = Path(__file__).resolve().parents[2]


def test_every_dataset_of_the_spec_table_is_registered_with_its_documented_total():
    # The package's own specification (docs/corpus-spec.md): one table row per dataset.
    spec = (Path(__file__).resolve().parents[2] / "docs" / "corpus-spec.md").read_text()
    table = dict(re.findall(r"^\| `(\w+)` \| `\w+` \| .*? \| ([\d,]+) \|", spec, re.M))
    assert table, "the dataset table of docs/corpus-spec.md was not found"
    assert {k: int(v.replace(",", "")) for k, v in table.items()} == {
        s.id: s.documented_total for s in registry.DATASETS}


def test_card_total_gap_is_explained_by_the_dataset_missing_from_the_mix():
    card = registry.reconcile_card_total()
    assert card["card_rows_sum"] == 215_669_406
    assert card["gap"] == 681_164
    assert card["explained_by"] == ["yahoo_answers_question_answer"]


def test_repository_data_config_is_the_reference_mix():
    assert json.loads((REPO / "data_config.json").read_text()) == reference_mix()


def test_reference_mix_reproduces_the_original_entries(upstream_samples):
    original = json.loads((upstream_samples.parent / "reference" / "multi-qa_v1.data_config.json").read_text())
    ours = {e["reference_name"]: (e["lines"], e["weight"]) for e in reference_mix() if "reference_name" in e}
    assert {e["name"]: (e["lines"], e["weight"]) for e in original} == ours
    assert sum(e["weight"] for e in reference_mix()) == 6454


def test_unknown_dataset_names_the_known_ones():
    with pytest.raises(KeyError, match="stackexchange_title_body"):
        registry.get("stack_exchange")


def test_derived_site_weight_follows_the_reference_scale():
    assert derived_site_weight(10_009) == 3
    assert derived_site_weight(270_904) == 62
    assert derived_site_weight(10**9) == 226
    assert derived_site_weight(1) == 1
