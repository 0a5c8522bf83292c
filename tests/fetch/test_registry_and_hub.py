"""The package's upstream registry, and Hugging Face datasets as an origin."""
from __future__ import annotations

import gzip
import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.corpus import registry
from pipelines.fetch import run as fetch
from pipelines.fetch.upstream import load_registry
from tests.fetch import upstream_data

SOURCES = {"stackexchange", "msmarco", "paq", "wikianswers", "gooaq", "amazon_qa", "yahoo_answers",
           "searchqa", "eli5", "quora", "natural_questions", "squad", "trivia_qa"}


def test_every_source_has_an_upstream_entry_in_its_build_folder():
    sources = load_registry()
    assert set(sources) == SOURCES
    for name, source in sources.items():
        module = registry.load_source(name)
        assert module is not None and source.folder == module.folder, name
        assert source.licence and source.citation and source.homepage, name
        assert source.files or source.listing, name
        for entry in source.files:
            assert entry.dest.startswith(source.folder + "/"), entry.dest
            assert entry.url is None or re.match(r"https?://", entry.url), entry.url
            assert entry.url or entry.note, f"{entry.dest}: no URL and no reason"
            for digest in (entry.sha256, entry.md5, entry.sha1):
                assert digest is None or re.fullmatch(r"[0-9a-f]{32,64}", digest)


def test_http_index_listing_finds_the_part_files(tmp_path, upstream):
    parts = {f"part-{i:05d}.gz": upstream_data.payload(1000 + i, i) for i in range(3)}
    for name, data in parts.items():
        upstream.add(f"/oqa/wikianswers/{name}", data)
    index = "".join(f'<a href="{n}">{n}</a>' for n in parts) + '<a href="../">up</a><a href="README">r</a>'
    upstream.add("/oqa/wikianswers/", f"<html><body>{index}</body></html>".encode(), "text/html")
    upstream_data.write_registry(tmp_path / "registry", "wikianswers", {
        "folder": "wikianswers", "files": [],
        "listing": {"kind": "http-index", "index_url": upstream.base_url + "/oqa/wikianswers/",
                    "include": ["*.gz"]}})
    manifest = fetch.run_fetch(fetch.FetchRequest(
        sources=("wikianswers",), dest=str(tmp_path / "in"), registry_dir=str(tmp_path / "registry"),
        progress_seconds=0), out=io.StringIO())
    assert manifest["counts"] == {"fetched": 3}
    for name, data in parts.items():
        assert (tmp_path / "in" / "wikianswers" / name).read_bytes() == data


def test_hub_dataset_from_a_local_mirror_is_written_as_json_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    records = [{"q_id": f"q{i}", "title": f"Why is the sky blue, part {i}?", "selftext": "",
                "category": "Physics", "subreddit": "explainlikeimfive",
                "answers": {"a_id": [f"a{i}"], "text": [f"Rayleigh scattering {i}."], "score": [5]},
                "title_urls": [], "selftext_urls": []} for i in range(5)]
    data_dir = tmp_path / "mirror" / "eli5_category" / "data"
    data_dir.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(records), data_dir / "train-00000-of-00001.parquet")
    upstream_data.write_registry(tmp_path / "registry", "eli5", {
        "folder": "eli5", "files": [],
        "hub": [{"dataset": "eli5_category", "config": None, "split": "train",
                 "dest": "eli5/hub/eli5-category-train.jsonl.gz"}]})
    request = fetch.FetchRequest(sources=("eli5",), dest=str(tmp_path / "in"),
                                 registry_dir=str(tmp_path / "registry"), origin="hub",
                                 hub_mirror=str(tmp_path / "mirror"), progress_seconds=0)
    manifest = fetch.run_fetch(request, out=io.StringIO())
    assert manifest["status"] == "complete", manifest
    written = tmp_path / "in" / "eli5" / "hub" / "eli5-category-train.jsonl.gz"
    assert [json.loads(line) for line in gzip.open(written, "rt")] == records
    again = fetch.run_fetch(request, out=io.StringIO())
    assert again["counts"] == {"skipped": 1}
