"""A fetch killed midway and started again: nothing lost, nothing left looking complete."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fetch import upstream_data
from tests.fetch.conftest import SECRETS

REPO = Path(__file__).resolve().parents[2]
BIG = 6 << 20


def _serve(upstream, registry_root: Path) -> dict[str, bytes]:
    files = {"demo/small-a.bin": upstream_data.payload(70_000, 11),
             "demo/small-b.bin": upstream_data.payload(90_000, 12),
             "demo/big.bin": upstream_data.payload(BIG, 13)}
    entries = []
    for dest, data in files.items():
        url = upstream.add("/" + dest, data)
        entries.append({"dest": dest, "url": url, "bytes": len(data) if dest != "demo/big.bin" else None,
                        "sha256": None})
    upstream_data.write_registry(registry_root, "demo", {"folder": "demo", "files": entries})
    upstream.throttle["/demo/big.bin"] = 1_500_000
    return files


def _start_fetch(registry_root: Path, dest: str, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "pipelines", "fetch", "--registry", str(registry_root),
               "--sources", "demo", "--to", dest, "--workers", "3", "--progress-seconds", "0.5",
               "--retry-delay", "0.05", "--timeout", "5"]
    return subprocess.Popen(command, cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env=dict(os.environ))


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _manifest_statuses(read_manifest) -> dict:
    raw = read_manifest()
    return {d: r["status"] for d, r in json.loads(raw)["files"].items()} if raw else {}


@pytest.mark.parametrize("target", ["local", "gcs"])
def test_killed_fetch_restarts_and_completes(target, tmp_path, upstream, request):
    files = _serve(upstream, tmp_path / "registry")
    if target == "local":
        dest = str(tmp_path / "in")
        read = lambda rel: (tmp_path / "in" / rel).read_bytes() if (tmp_path / "in" / rel).exists() else None
    else:
        client = request.getfixturevalue("gcs")
        client.create_bucket("killed-fetch")
        dest = "gs://killed-fetch/in"
        def read(rel):
            blob = client.bucket("killed-fetch").get_blob(f"in/{rel}")
            return None if blob is None else blob.download_as_bytes()
    read_manifest = lambda: read("_fetch/manifest.json")

    first = _start_fetch(tmp_path / "registry", dest, tmp_path / "first.log")
    try:
        _wait(lambda: upstream.sent["/demo/big.bin"] > BIG // 4
              and sum(s == "fetched" for s in _manifest_statuses(read_manifest).values()) == 2,
              60, "the small files and a quarter of the big one")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

    # Killed mid-file: the big file is not under its final name; the small ones are complete.
    assert read("demo/big.bin") is None
    assert read("demo/small-a.bin") == files["demo/small-a.bin"]
    if target == "local":
        assert (tmp_path / "in" / "demo" / ".big.bin.partial").stat().st_size > 0

    upstream.throttle.clear()
    small_requests = len(upstream.requests_for("/demo/small-a.bin"))
    second = _start_fetch(tmp_path / "registry", dest, tmp_path / "second.log")
    assert second.wait(timeout=60) == 0, (tmp_path / "second.log").read_text()

    for rel, data in files.items():
        assert read(rel) == data
    assert _manifest_statuses(read_manifest) == {
        "demo/small-a.bin": "skipped", "demo/small-b.bin": "skipped", "demo/big.bin": "fetched"}
    assert len(upstream.requests_for("/demo/small-a.bin")) == small_requests
    ranges = upstream.requests_for("/demo/big.bin")
    if target == "local":
        # The partial file was resumed, not fetched again from the start.
        assert ranges[-1] is not None and int(ranges[-1].split("=")[1].rstrip("-")) > 0
        assert not list((tmp_path / "in").rglob("*.partial"))
    logs = (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text()
    assert "ETA" in logs and "/s" in logs
    for secret in SECRETS:
        assert secret not in logs
        assert secret not in read_manifest().decode()
