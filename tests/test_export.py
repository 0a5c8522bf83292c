"""``corpus export`` on the sample corpus: the repository folder loads with ``datasets``
(every configuration, with its rows), the card's YAML names every configuration and
licence, the shards are byte copies, a second export writes the same bytes, and the
``jsonl.gz`` format holds the rows' texts, one file per mix entry."""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines import build, cli, export, training
from pipelines.corpus import mix, registry
from pipelines.corpus.schema import row_arrow_schema
from tests.sample_corpus import sample_corpus

SITED = "stackexchange_title_body"


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    """A ``datasets`` cache of this module only, nothing fetched from the network."""
    home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HOME", str(home))
        env.setenv("HF_DATASETS_OFFLINE", "1")
        env.setenv("HF_HUB_OFFLINE", "1")
        yield str(home / "datasets")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The sample build, with ``stackexchange_title_body`` cut into one group per site (as
    big sites are in a full build), so the per-site configurations are many."""
    out = tmp_path_factory.mktemp("sited") / "out"
    shutil.copytree(sample_corpus(), out)
    manifest = json.loads((out / "manifest.json").read_text())
    entry = manifest["datasets"][SITED]
    table = pa.concat_tables(pq.read_table(out / SITED / s["file"]) for s in entry["shards"])
    for shard in entry["shards"]:
        (out / SITED / shard["file"]).unlink()
    sites = sorted(set(table.column("subset").to_pylist()))
    entry["shards"], entry["groups"] = [], {}
    for n, site in enumerate(sites):
        name = f"{SITED}-{n:05d}-of-{len(sites):05d}.parquet"
        rows = table.filter(pc.equal(table.column("subset"), site))
        pq.write_table(rows, out / SITED / name)
        entry["shards"].append({"file": name, "rows": rows.num_rows,
                                "bytes": (out / SITED / name).stat().st_size, "group": site})
        entry["groups"][site] = {"rows": rows.num_rows, "shards": [name], "documented": None, "verdict": "-"}
        entry["subsets"][site]["group"] = site
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    (out / "data_config.json").write_text(json.dumps(mix.measured_mix(manifest), indent=1, ensure_ascii=False))
    return out


@pytest.fixture(scope="module")
def parquet_repo(corpus, tmp_path_factory) -> Path:
    return Path(export.export_build(str(corpus), str(tmp_path_factory.mktemp("repo") / "dest")))


@pytest.fixture(scope="module")
def jsonl_repo(corpus, tmp_path_factory) -> Path:
    return Path(export.export_build(str(corpus), str(tmp_path_factory.mktemp("jsonl") / "dest"),
                                    format="jsonl.gz"))


def _manifest(corpus: Path) -> dict:
    return json.loads((corpus / "manifest.json").read_text())


def _built(corpus: Path) -> dict:
    return {d: e for d, e in _manifest(corpus)["datasets"].items() if e["status"] == "built"}


def _rows(corpus: Path, dataset: str, shard_files) -> list[dict]:
    return [row for name in shard_files for row in pq.read_table(corpus / dataset / name).to_pylist()]


def _card(repo: Path) -> tuple[dict, str]:
    _, front, body = (repo / "README.md").read_text().split("---\n", 2)
    return yaml.safe_load(front), body


def _expected_configs(corpus: Path) -> dict[str, tuple[str, list[str], int]]:
    """config name -> (dataset, shard files, rows)."""
    configs = {}
    for dataset, entry in _built(corpus).items():
        configs[dataset] = (dataset, [s["file"] for s in entry["shards"]], entry["rows"])
        for group, info in entry.get("groups", {}).items():
            configs[f"{dataset}-{group}"] = (dataset, info["shards"], info["rows"])
    return configs


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_msmarco_triplets_loads_with_datasets_and_holds_the_shards_rows(corpus, parquet_repo, hf_cache):
    import datasets

    loaded = datasets.load_dataset(str(parquet_repo), "msmarco_triplets", split="train", cache_dir=hf_cache)
    entry = _built(corpus)["msmarco_triplets"]
    expected = _rows(corpus, "msmarco_triplets", [s["file"] for s in entry["shards"]])
    assert loaded.column_names == list(row_arrow_schema().names)
    assert loaded.to_list() == expected
    assert all(row["negative"] for row in expected)


def test_every_dataset_and_site_group_is_a_configuration_with_its_rows(corpus, parquet_repo, hf_cache):
    import datasets

    expected = _expected_configs(corpus)
    assert len([name for name in expected if name.startswith(f"{SITED}-")]) >= 3
    assert sorted(datasets.get_dataset_config_names(str(parquet_repo))) == sorted(expected)
    for name, (dataset, shard_files, rows) in expected.items():
        loaded = datasets.load_dataset(str(parquet_repo), name, split="train", cache_dir=hf_cache)
        assert len(loaded) == rows, name
        if name.startswith(f"{SITED}-"):  # a site's configuration holds that site's rows only
            assert loaded.to_list() == _rows(corpus, dataset, shard_files)
            assert set(loaded["subset"]) == {name.removeprefix(f"{SITED}-")}


def test_the_cards_yaml_names_every_configuration_and_source_licence(corpus, parquet_repo):
    meta, body = _card(parquet_repo)
    assert [c["config_name"] for c in meta["configs"]] == list(_expected_configs(corpus))
    for config in meta["configs"]:
        assert [split["split"] for split in config["data_files"]] == ["train"]
    sources = {registry.get(d).source for d in _built(corpus)}
    assert set(meta["source_licences"]) == sources
    for source in sources:
        upstream = json.loads((Path(registry.__file__).parents[1] / "sources" / source / "upstream.json").read_text())
        assert meta["source_licences"][source] == upstream["licence"]
        assert upstream["citation"] in body
    assert meta["license"] == "other"
    assert meta["task_categories"] == ["sentence-similarity"] and meta["language"] == ["en"]
    assert meta["size_categories"] == ["n<1K"]
    assert "not part of this repository" in body  # the rejected records
    assert 'load_dataset("REPO_OR_FOLDER", "msmarco_triplets", split="train")' in body


def test_shards_and_manifest_are_byte_copies_and_the_mix_points_at_them(corpus, parquet_repo):
    for dataset, entry in _built(corpus).items():
        for shard in entry["shards"]:
            copy = parquet_repo / "data" / dataset / shard["file"]
            assert copy.read_bytes() == (corpus / dataset / shard["file"]).read_bytes()
    assert (parquet_repo / "manifest.json").read_bytes() == (corpus / "manifest.json").read_bytes()
    original = json.loads((corpus / "data_config.json").read_text())
    moved = json.loads((parquet_repo / "data_config.json").read_text())
    assert moved == [{**e, "files": [f"data/{f}" for f in e["files"]]} for e in original]
    entries = training.read_mix(str(parquet_repo))
    assert entries and all(Path(f).is_file() for e in entries for f in e.files)


@pytest.mark.parametrize("format", export.FORMATS)
def test_a_second_export_writes_the_same_bytes(corpus, parquet_repo, jsonl_repo, tmp_path, format):
    first = parquet_repo if format == "parquet" else jsonl_repo
    again = export.export_build(str(corpus), str(tmp_path / "again"), format=format)
    assert _tree(Path(again)) == _tree(first)


def test_a_dest_with_files_is_refused_and_replaced_with_force(corpus, tmp_path):
    dest = tmp_path / "dest"
    (dest / ".git").mkdir(parents=True)
    (dest / ".git" / "config").write_text("kept")
    (dest / "stale.txt").write_text("old")
    with pytest.raises(build.BuildError) as refused:
        export.export_build(str(corpus), str(dest))
    assert "\n" not in str(refused.value) and "--force" in str(refused.value)
    assert (dest / "stale.txt").exists()
    parser = argparse.ArgumentParser()
    export.register(parser.add_subparsers(dest="command"))
    assert export.run(parser.parse_args(["export", str(corpus), str(dest), "--force"])) == 0
    assert not (dest / "stale.txt").exists() and (dest / ".git" / "config").read_text() == "kept"
    assert (dest / "README.md").is_file()


def test_user_errors_are_one_line(corpus, tmp_path):
    for call in (lambda: export.export_build(str(tmp_path / "nothing"), str(tmp_path / "a")),
                 lambda: export.export_build(str(corpus), str(tmp_path / "b"), format="csv"),
                 lambda: export.export_build(str(corpus), str(corpus)),
                 lambda: export.export_build(str(corpus), str(corpus.parent))):
        with pytest.raises(build.BuildError) as error:
            call()
        assert "\n" not in str(error.value)
    assert not (tmp_path / "b").exists()


@pytest.mark.skipif("export" not in Path(cli.__file__).read_text(), reason="corpus export is not wired into cli.py")
def test_the_command_reports_a_dest_with_files_in_one_line(corpus, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    assert cli.run(["export", str(corpus), str(tmp_path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_jsonl_gz_has_a_file_per_mix_entry_with_the_rows_texts(corpus, jsonl_repo):
    mix_entries = json.loads((corpus / "data_config.json").read_text())
    config = json.loads((jsonl_repo / "data_config.json").read_text())
    assert config == [{"name": export.jsonl_name(e), "lines": e["lines"], "weight": e["weight"]} for e in mix_entries]
    assert "msmarco-query_passage_negative_v2.jsonl.gz" in {e["name"] for e in config}
    assert f"{SITED}/coffee.stackexchange.com.jsonl.gz" in {e["name"] for e in config}
    for entry, item in zip(mix_entries, config):
        path = jsonl_repo / item["name"]
        assert path.read_bytes()[4:8] == b"\0\0\0\0"  # no time in the gzip header
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            texts = [json.loads(line) for line in lines]
        rows = [row for f in entry["files"] for row in pq.read_table(corpus / f).to_pylist()]
        columns = ("anchor", "positive", "negative")[:entry["columns"]]
        assert texts == [[row[c] for c in columns] for row in rows], item["name"]
        assert len(texts) == item["lines"]
    assert (jsonl_repo / "manifest.json").read_bytes() == (corpus / "manifest.json").read_bytes()
    meta, body = _card(jsonl_repo)
    assert "configs" not in meta and meta["viewer"] is False
    assert set(meta["source_licences"]) == {registry.get(d).source for d in _built(corpus)}
    assert "does not read a JSON list per line" in body
