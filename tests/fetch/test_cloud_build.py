"""Fetch into a bucket with faults, build from that bucket into another, load with datasets.

Both bucket kinds run against real API servers on loopback: gcp-storage-emulator (used
through google-cloud-storage and smart-open by the fetch, through Beam's own ``gs://``
filesystem by the build) and moto's S3 server (boto3 and smart-open; Beam's ``s3://``).
"""
from __future__ import annotations

import io
import json
import logging

import pytest

from pipelines import build
from pipelines.fetch import run as fetch
from pipelines.fetch.remote import RetryPolicy
from tests.fetch import upstream_data
from tests.fetch.conftest import SECRETS
from tests.helpers import TEST_BEAM_ARGS

FAST = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2, connect_timeout=2.0, read_timeout=1.0)
DATASETS = ("stackexchange_title_body", "stackexchange_title_answer", "stackexchange_duplicate_questions")


class _Bucket:
    """List and read the objects of one bucket, whatever its kind."""

    def __init__(self, kind: str, client, name: str):
        self.kind, self.client, self.name = kind, client, name
        if kind == "gs":
            client.create_bucket(name)
        else:
            client.create_bucket(Bucket=name)

    def url(self, key: str = "") -> str:
        return f"{self.kind}://{self.name}/{key}"

    def keys(self) -> list[str]:
        if self.kind == "gs":
            return sorted(b.name for b in self.client.list_blobs(self.name))
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, key: str) -> bytes:
        if self.kind == "gs":
            return self.client.bucket(self.name).blob(key).download_as_bytes()
        return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()


def _faults(upstream) -> None:
    path = "/download/stackexchange/{}".format
    upstream.fail(path("coffee.stackexchange.com.7z"), "503", "truncate")
    upstream.fail(path("stackoverflow.com-Posts.7z"), "wrong", "reset")
    upstream.fail(path("stackoverflow.com-PostLinks.7z"), "slow", "500")
    upstream.fail(path("bicycles.stackexchange.com.7z"), "truncate", "norange")


def _expected_counts() -> dict:
    from pipelines.corpus import registry
    return registry.load_source("stackexchange").sample_expected_counts()


@pytest.mark.parametrize("kind", ["gs", "s3"])
def test_fetch_into_bucket_build_into_bucket_and_load_with_datasets(
        kind, tmp_path, upstream, request, monkeypatch, caplog, capsys):
    client = request.getfixturevalue("gcs" if kind == "gs" else "s3")
    raw = _Bucket(kind, client, f"raw-{kind}")
    corpus = _Bucket(kind, client, f"corpus-{kind}")
    archives = upstream_data.serve_stackexchange(upstream, tmp_path / "registry",
                                                 unpublished="bicycles.stackexchange.com.7z")
    _faults(upstream)
    # Everything logged at INFO and above is scanned (botocore's DEBUG output quotes signed
    # request headers by design; that level is never enabled by the package).
    caplog.set_level(logging.INFO)
    log = io.StringIO()

    manifest = fetch.run_fetch(fetch.FetchRequest(
        sources=("stackexchange",), dest=raw.url("in"), registry_dir=str(tmp_path / "registry"),
        policy=FAST, progress_seconds=0.2, workers=4), out=log)
    assert manifest["status"] == "complete", log.getvalue()
    for name, data in archives.items():
        assert raw.read(f"in/stackexchange/{name}") == data

    out = corpus.url("out")
    result = build.run_build(
        build.BuildRequest(output=out, input_root=raw.url("in"), datasets=DATASETS),
        TEST_BEAM_ARGS + [f"--temp_location={corpus.url('tmp')}"])
    expected = _expected_counts()
    for dataset_id in DATASETS:
        assert result["datasets"][dataset_id]["rows"] == expected[dataset_id]["rows"], dataset_id
    stored = json.loads(corpus.read("out/manifest.json"))
    assert stored["datasets"]["stackexchange_title_body"]["rows"] == expected["stackexchange_title_body"]["rows"]
    assert {i["path"] for i in stored["inputs"]} == {f"stackexchange/{n}" for n in archives}

    # The shards load with datasets (offline, cache in a temporary HF_HOME).
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    shards = tmp_path / "shards"
    local = []
    for key in corpus.keys():
        if key.endswith(".parquet"):
            target = shards / key
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(corpus.read(key))
            local.append(str(target))
    import datasets

    loaded = datasets.load_dataset("parquet", data_files={"train": local}, split="train",
                                   cache_dir=str(tmp_path / "hf" / "datasets"))
    assert loaded.num_rows == sum(result["datasets"][d]["rows"] for d in DATASETS)
    assert {"anchor", "positive", "negative", "dataset"} <= set(loaded.column_names)
    assert set(loaded.unique("dataset")) == set(DATASETS)

    # No credential anywhere: objects of both buckets, the fetch log, captured output and logs.
    captured = capsys.readouterr()
    texts = [log.getvalue(), captured.out, captured.err, caplog.text]
    texts += [bucket.read(key).decode("latin-1") for bucket in (raw, corpus) for key in bucket.keys()]
    for secret in SECRETS:
        assert not any(secret in text for text in texts)
