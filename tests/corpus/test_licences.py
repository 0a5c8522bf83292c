"""Dataset licences: the registry names one for every dataset, ``--licences`` selects by
them, and every output of a build shows them: the manifest, the count table,
``data_config.json``, the report, the export's card and ``docs/licences.md``."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import build, export, report
from pipelines.corpus import licences, mix, registry, verify
from pipelines.corpus.licences import LicenceSelection
from tests.helpers import TEST_BEAM_ARGS, read_output
from tests.sample_corpus import sample_corpus

DOC = Path(__file__).resolve().parents[2] / "docs" / "licences.md"


def _licence(dataset_id: str) -> licences.Licence:
    return licences.get(registry.get(dataset_id).licence)


def _refusals(selection: LicenceSelection) -> dict[str, str]:
    """Dataset id -> why ``selection`` leaves it out, for the datasets it leaves out."""
    return {spec.id: selection.refusal(_licence(spec.id)) for spec in registry.DATASETS
            if selection.refusal(_licence(spec.id))}


def test_every_dataset_names_a_known_licence():
    assert len({licence.id for licence in licences.LICENCES}) == len(licences.LICENCES)
    for spec in registry.DATASETS:
        licence = licences.get(spec.licence)
        assert licence.commercial in (licences.YES, licences.NO, licences.UNKNOWN), spec.id
        assert licence.url.startswith("https://"), spec.id
    with pytest.raises(KeyError, match="cc-by-sa-4.0"):
        licences.get("cc-by-4.0")


def test_parse_accepts_commercial_or_known_ids_and_names_the_known_ones_otherwise():
    assert LicenceSelection.parse("commercial") == LicenceSelection(commercial_only=True)
    assert LicenceSelection.parse(" cc-by-sa-4.0 , cc-by-sa-3.0,") == LicenceSelection(
        ids=frozenset({"cc-by-sa-3.0", "cc-by-sa-4.0"}))
    with pytest.raises(ValueError) as unknown:
        LicenceSelection.parse("cc-by-sa-4.0,mit")
    assert "mit" in str(unknown.value) and all(i in str(unknown.value) for i in licences.licence_ids())
    for empty in ("", " , "):
        with pytest.raises(ValueError, match="commercial"):
            LicenceSelection.parse(empty)


def test_refusals_say_why_and_unknown_commercial_use_counts_as_not_allowed():
    commercial = LicenceSelection.parse("commercial")
    assert commercial.refusal(licences.get("cc-by-sa")) is None
    assert commercial.refusal(licences.get("msmarco-terms")) == "licence msmarco-terms: commercial use not allowed"
    assert commercial.refusal(licences.get("eli5-unstated")) == (
        "licence eli5-unstated: commercial use not stated (counted as not allowed)")
    assert commercial.describe() == "commercial"
    named = LicenceSelection.parse("cc-by-sa-4.0")
    assert named.refusal(licences.get("cc-by-sa-4.0")) is None
    assert named.refusal(licences.get("cc-by-sa-3.0")) == "licence cc-by-sa-3.0 not in --licences"
    # A family is accepted only when named itself, not through one of its versions.
    assert named.refusal(licences.get("cc-by-sa")) == "licence cc-by-sa not in --licences"
    assert LicenceSelection.parse("cc-by-sa-4.0,cc-by-sa").describe() == "cc-by-sa,cc-by-sa-4.0"


def licence_table() -> str:
    """The table of docs/licences.md, from the registry."""
    lines = ["| dataset | licence | terms | commercial use | why |", "|---|---|---|---|---|"]
    for spec in registry.DATASETS:
        licence = licences.get(spec.licence)
        lines.append(f"| `{spec.id}` | {licence.name} (`{licence.id}`) | <{licence.url}> | {licence.commercial} "
                     f"| {licence.note or 'stated by the licence'} |")
    return "\n".join(lines) + "\n"


def test_the_documented_table_is_the_registrys():
    assert licence_table() in DOC.read_text("utf-8"), (
        "docs/licences.md's table differs from the registry; it should read:\n" + licence_table())


# The bundled sample built with every licence (shared with the other tests of the session).

def test_the_manifest_names_every_datasets_licence():
    manifest = json.loads((sample_corpus() / "manifest.json").read_text())
    assert manifest["run"]["licences"] == "all"
    for dataset_id, entry in manifest["datasets"].items():
        licence = _licence(dataset_id)
        assert entry["licence"] == {"id": licence.id, "name": licence.name, "url": licence.url,
                                    "commercial": licence.commercial}, dataset_id
        assert "reason" not in entry


def test_the_count_table_has_each_rows_licence_and_commercial_use_and_stays_readable():
    manifest = json.loads((sample_corpus() / "manifest.json").read_text())
    table = verify.format_table(manifest).splitlines()
    assert table[0].split()[-2:] == ["licence", "commercial"]
    rows = {line.split()[0]: line.split() for line in table[2:2 + len(manifest["datasets"])]}
    for dataset_id in manifest["datasets"]:
        licence = _licence(dataset_id)
        assert rows[dataset_id][-2:] == [licence.id, licence.commercial]
    assert max(len(line) for line in table[:2 + len(rows)]) <= 150
    assert not any(line.startswith("Licences:") for line in table)  # no selection to explain


def test_every_mix_entry_names_its_datasets_licence():
    entries = json.loads((sample_corpus() / "data_config.json").read_text())
    for entry in entries:
        licence = _licence(entry["dataset"])
        assert (entry["licence"], entry["commercial"]) == (licence.id, licence.commercial), entry["name"]
    sited = [e for e in entries if e.get("subset")]
    assert sited and {e["licence"] for e in sited} == {"cc-by-sa"}


def test_the_report_links_every_licence(tmp_path):
    html = report.render(str(sample_corpus()))
    section = html[html.index('id="licences"'):html.index('id="inputs"')]
    assert "every licence (no --licences)" in section
    for spec in registry.DATASETS:
        licence = _licence(spec.id)
        link = f'<a href="{licence.url}" rel="noreferrer">{licence.name}</a>'.replace("'", "&#x27;")
        assert f"<td>{spec.id}</td><td>built</td><td>{link}</td><td>{licence.commercial}</td>" in section
    assert "Left out by the licence selection" not in section


def test_the_export_card_has_a_licence_per_dataset_and_the_shards_columns(tmp_path):
    dest = Path(export.export_build(str(sample_corpus()), str(tmp_path / "repo")))
    _, front, body = (dest / "README.md").read_text().split("---\n", 2)
    meta = yaml.safe_load(front)
    manifest = json.loads((sample_corpus() / "manifest.json").read_text())
    assert meta["license"] == "other" and meta["license_name"] == "mixed"
    assert meta["dataset_licences"] == {d: _licence(d).id for d in manifest["datasets"]}
    section = body[body.index("## Licences"):body.index("## How it was built")]
    for dataset_id in manifest["datasets"]:
        licence = _licence(dataset_id)
        assert f"| `{dataset_id}` | `{dataset_id}`" in section
        assert f"[{licence.name}]({licence.url}) | {licence.commercial} |" in section
    assert "`stackexchange_title_body-<site group>`" in section
    shard = next(dest.glob("data/squad/*.parquet"))
    columns = re.findall(r"^\| `(\w+)` \| ", body[:body.index("## Datasets")], re.MULTILINE)
    assert columns == pq.read_schema(shard).names


def test_the_card_names_the_hubs_licence_when_every_dataset_has_the_same_one():
    metadata = export._licence_metadata
    assert metadata({licences.get("cc-by-sa-4.0")}) == {"license": "cc-by-sa-4.0"}
    assert metadata({licences.get("cc-by-sa-3.0"), licences.get("paq-cc-by-sa-3.0")}) == {"license": "cc-by-sa-3.0"}
    assert metadata({licences.get("cc-by-sa")}) == {
        "license": "other", "license_name": "cc-by-sa", "license_link": licences.get("cc-by-sa").url}
    assert metadata({licences.get("cc-by-sa-4.0"), licences.get("gooaq-terms")}) == {
        "license": "other", "license_name": "mixed"}


# The bundled sample built with --licences commercial.

@pytest.fixture(scope="module")
def commercial(tmp_path_factory):
    output = tmp_path_factory.mktemp("commercial") / "out"
    request = build.BuildRequest(output=str(output), sample=True, licences=LicenceSelection.parse("commercial"))
    build.run_build(request, list(TEST_BEAM_ARGS))
    return read_output(output)


def test_a_commercial_build_holds_only_datasets_whose_terms_allow_it(commercial):
    manifest = commercial.manifest
    refused = _refusals(LicenceSelection.parse("commercial"))
    assert manifest["run"]["licences"] == "commercial"
    built = {d for d, e in manifest["datasets"].items() if e["status"] == "built"}
    assert built and all(manifest["datasets"][d]["licence"]["commercial"] == "yes" for d in built)
    assert built == {spec.id for spec in registry.DATASETS if _licence(spec.id).allows_commercial}
    for dataset in built:  # a row's own licence (a StackExchange post's) allows it too
        assert {row["licence"] for row in commercial.rows[dataset]} <= {
            lic.id for lic in licences.LICENCES if lic.allows_commercial}
    for dataset_id, reason in refused.items():
        entry = manifest["datasets"][dataset_id]
        assert (entry["status"], entry["verdict"], entry["reason"]) == ("not selected", "not selected", reason)
    assert set(refused) | built == set(manifest["datasets"])


def test_a_commercial_builds_mix_weighs_only_what_it_built(commercial):
    entries = json.loads((commercial.output / "data_config.json").read_text())
    built = {d for d, e in commercial.manifest["datasets"].items() if e["status"] == "built"}
    assert {e["dataset"] for e in entries} == built
    assert all(e["commercial"] == "yes" for e in entries)
    assert entries == mix.measured_mix(commercial.manifest)
    # The weights are those the same entries have in a build of every licence.
    everything = {e["name"]: e["weight"] for e in json.loads((sample_corpus() / "data_config.json").read_text())}
    assert {e["name"]: e["weight"] for e in entries} == {e["name"]: everything[e["name"]] for e in entries}


def test_a_commercial_builds_table_report_and_card_say_why_datasets_are_left_out(commercial, tmp_path):
    manifest = commercial.manifest
    refused = _refusals(LicenceSelection.parse("commercial"))
    table = verify.format_table(manifest).splitlines()
    for dataset_id, reason in refused.items():
        row = next(n for n, line in enumerate(table) if line.split()[0] == dataset_id)
        assert "not selected" in table[row] and table[row + 1] == f"    reason: {reason}"
    assert any(line.startswith("Licences: --licences commercial;") for line in table)
    html = report.render(str(commercial.output))
    section = html[html.index('id="licences"'):html.index('id="inputs"')]
    assert "--licences commercial accepts" in section and "Left out by the licence selection" in section
    for dataset_id, reason in refused.items():
        assert f"<tr><td>{dataset_id}</td><td>{reason}</td></tr>" in section
    dest = Path(export.export_build(str(commercial.output), str(tmp_path / "repo")))
    card = (dest / "README.md").read_text()
    for dataset_id, reason in refused.items():
        assert f"- `{dataset_id}` left out: {reason}" in card
    assert "- licences: commercial" in card
