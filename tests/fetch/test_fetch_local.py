"""``corpus fetch`` into a local folder: retries, resume, verification, checksum registration."""
from __future__ import annotations

import hashlib
import io
import json

from pipelines.fetch import run as fetch
from pipelines.fetch.remote import RetryPolicy
from tests.fetch import upstream_data

FAST = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2, connect_timeout=2.0, read_timeout=1.0)


def _request(dest, registry_root, sources=("stackexchange",), **kwargs):
    return fetch.FetchRequest(sources=tuple(sources), dest=str(dest), registry_dir=str(registry_root),
                              policy=kwargs.pop("policy", FAST), progress_seconds=0, **kwargs)


def test_every_fault_is_survived_and_every_file_verified(tmp_path, upstream):
    archives = upstream_data.serve_stackexchange(upstream, tmp_path / "registry",
                                                 unpublished="coffee.stackexchange.com.7z")
    path = "/download/stackexchange/{}".format
    upstream.fail(path("coffee.stackexchange.com.7z"), "503", "truncate", "norange")
    upstream.fail(path("stackoverflow.com-Posts.7z"), "reset", "500")
    upstream.fail(path("stackoverflow.com-PostLinks.7z"), "slow")
    upstream.fail(path("bicycles.stackexchange.com.7z"), "wrong", "truncate")
    log = io.StringIO()
    manifest = fetch.run_fetch(_request(tmp_path / "in", tmp_path / "registry"), out=log)

    assert manifest["status"] == "complete", log.getvalue()
    for name, data in archives.items():
        assert (tmp_path / "in" / "stackexchange" / name).read_bytes() == data
        record = manifest["files"][f"stackexchange/{name}"]
        assert record["status"] == "fetched" and record["sha256"] == hashlib.sha256(data).hexdigest()
    assert not list((tmp_path / "in").rglob("*.partial"))
    # The truncated transfer was resumed with a range request.
    assert any(r and r != "bytes=0-" for r in upstream.requests_for(path("coffee.stackexchange.com.7z")))
    # Published md5/sha1 were checked; the unpublished file had only its size.
    assert set(manifest["files"]["stackexchange/stackoverflow.com-Posts.7z"]["checked"]) == {"bytes", "md5", "sha1"}
    assert manifest["files"]["stackexchange/coffee.stackexchange.com.7z"]["checked"] == ["bytes"]
    # Every file without a published sha256 has it registered by this first verified fetch.
    registered = json.loads((tmp_path / "in" / "_fetch" / "checksums.json").read_text())["files"]
    assert {dest: entry["sha256"] for dest, entry in registered.items()} == {
        f"stackexchange/{name}": hashlib.sha256(data).hexdigest() for name, data in archives.items()}
    assert "retry" in log.getvalue()

    # A second run finds every file verified and transfers nothing.
    before = len(upstream.requests)
    again = fetch.run_fetch(_request(tmp_path / "in", tmp_path / "registry"), out=io.StringIO())
    assert again["counts"] == {"skipped": len(archives)}
    assert [p for p, _ in upstream.requests[before:]] == ["/metadata/stackexchange"]


def test_an_html_page_in_place_of_a_file_is_refused_and_a_mirror_used(tmp_path, upstream):
    data = upstream_data.payload(300_000, seed=1)
    url = upstream.add("/drive/quora.tsv", data)
    mirror = upstream.add("/mirror/quora.tsv", data)
    drive_only_url = upstream.add("/drive/other.tsv", data)
    upstream.fail("/drive/quora.tsv", *["html"] * 10)
    upstream.fail("/drive/other.tsv", *["html"] * 10)
    upstream_data.write_registry(tmp_path / "registry", "quora", {"folder": "quora", "files": [
        {"dest": "quora/quora_duplicate_questions.tsv", "url": url, "mirrors": [mirror],
         "bytes": len(data), "sha256": None},
        {"dest": "quora/only_drive.tsv", "url": drive_only_url, "sha256": None}]})
    manifest = fetch.run_fetch(_request(tmp_path / "in", tmp_path / "registry", ("quora",)), out=io.StringIO())

    assert manifest["status"] == "incomplete"
    drive_only = manifest["files"]["quora/only_drive.tsv"]
    assert drive_only["status"] == "failed" and "HTML page" in drive_only["error"]
    assert not (tmp_path / "in" / "quora" / "only_drive.tsv").exists()
    assert not list((tmp_path / "in").rglob("*.partial"))
    mirrored = manifest["files"]["quora/quora_duplicate_questions.tsv"]
    assert mirrored["status"] == "fetched" and mirrored["url"] == mirror
    assert (tmp_path / "in" / "quora" / "quora_duplicate_questions.tsv").read_bytes() == data


def test_a_registered_checksum_holds_later_fetches(tmp_path, upstream):
    data = upstream_data.payload(200_000, seed=2)
    url = upstream.add("/files/split.json", data)
    upstream_data.write_registry(tmp_path / "registry", "gooaq", {"folder": "gooaq", "files": [
        {"dest": "gooaq/split.json", "url": url, "sha256": None}]})
    shared = tmp_path / "checksums.json"
    first = fetch.run_fetch(_request(tmp_path / "a", tmp_path / "registry", ("gooaq",), checksums=str(shared)),
                            out=io.StringIO())
    assert first["status"] == "complete"
    assert json.loads(shared.read_text())["files"]["gooaq/split.json"]["sha256"] == hashlib.sha256(data).hexdigest()

    # The host now serves other bytes of the same size: every attempt fails verification.
    upstream.fail("/files/split.json", *["wrong"] * 10)
    second = fetch.run_fetch(_request(tmp_path / "b", tmp_path / "registry", ("gooaq",), checksums=str(shared)),
                             out=io.StringIO())
    record = second["files"]["gooaq/split.json"]
    assert record["status"] == "failed" and "verification failed: sha256" in record["error"]
    assert not (tmp_path / "b" / "gooaq" / "split.json").exists()
    assert not list((tmp_path / "b").rglob("*.partial"))


def test_progress_lines_show_bytes_rate_and_eta(tmp_path, upstream):
    data = upstream_data.payload(1_500_000, seed=3)
    url = upstream.add("/big.bin", data)
    upstream.throttle["/big.bin"] = 2_000_000
    upstream_data.write_registry(tmp_path / "registry", "paq", {"folder": "paq", "files": [
        {"dest": "paq/PAQ.tar.gz", "url": url, "bytes": len(data), "sha256": None}]})
    log = io.StringIO()
    request = _request(tmp_path / "in", tmp_path / "registry", ("paq",))
    request.progress_seconds = 0.2
    fetch.run_fetch(request, out=log)
    lines = [line for line in log.getvalue().splitlines() if "ETA" in line]
    assert lines and "MB" in lines[0] and "/s" in lines[0] and "0/1 files" in lines[0]
