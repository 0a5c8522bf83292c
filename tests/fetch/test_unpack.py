"""Archives marked ``unpack``: unpacked beside themselves once verified, one record per member,
not unpacked again, refused when a member would leave the folder, and judged by the build
as the published release."""
from __future__ import annotations

import hashlib
import io
import json
import shutil

import pytest

from pipelines.cli import run
from pipelines.fetch import run as fetch
from pipelines.fetch import unpack
from pipelines.fetch.records import Progress
from pipelines.fetch.remote import RetryPolicy
from tests.fetch import upstream_data
from tests.helpers import TEST_BEAM_ARGS

FAST = RetryPolicy(attempts=2, base_delay=0.05, max_delay=0.2, connect_timeout=2.0, read_timeout=2.0)
RC = "triviaqa/triviaqa-rc.tar.gz"
UNFILTERED = "triviaqa/triviaqa-unfiltered.tar.gz"


def _request(dest, registry_root, **kwargs) -> fetch.FetchRequest:
    return fetch.FetchRequest(sources=("trivia_qa",), dest=str(dest), registry_dir=str(registry_root),
                              policy=FAST, progress_seconds=0, **kwargs)


def _member_dests() -> dict[str, tuple[str, bytes]]:
    """dest -> (archive dest, bytes) of every member of the served sample archives."""
    return {f"triviaqa/{name}": (f"triviaqa/{archive}", data)
            for archive, members in upstream_data.trivia_qa_members().items()
            for name, data in members.items()}


def _mtimes(root, dests) -> dict[str, int]:
    return {dest: (root / dest).stat().st_mtime_ns for dest in dests}


def test_a_marked_archive_is_unpacked_beside_itself_and_recorded_per_member(tmp_path, upstream):
    archives = upstream_data.serve_trivia_qa(upstream, tmp_path / "registry")
    root = tmp_path / "in"
    listing = io.StringIO()
    fetch.run_fetch(_request(root, tmp_path / "registry", list_only=True, include_optional=True), out=listing)
    assert [line.split("\t")[2] for line in listing.getvalue().splitlines()] == ["unpacked into triviaqa/"] * 2

    log = io.StringIO()
    manifest = fetch.run_fetch(_request(root, tmp_path / "registry", include_optional=True), out=log)
    assert manifest["status"] == "complete", log.getvalue()
    members = _member_dests()
    assert "triviaqa/qa/web-train.json" in members  # the rc release's own layout
    for dest, (archive, data) in members.items():
        assert (root / dest).read_bytes() == data
        assert manifest["files"][dest] == {"source": "trivia_qa", "status": "unpacked", "from": archive,
                                           "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    for name, data in archives.items():
        record = manifest["files"][f"triviaqa/{name}"]
        assert record["status"] == "fetched" and record["sha256"] == hashlib.sha256(data).hexdigest()
        summary = record["unpack"]
        assert summary["status"] == "complete" and summary["archive_sha256"] == record["sha256"]
        assert summary["members"] == sum(a == f"triviaqa/{name}" for a, _ in members.values())
    assert manifest["counts"] == {"fetched": 2, "unpacked": len(members)}
    assert f"fetch: unpacked {RC} (" in log.getvalue()
    assert not list(root.rglob("*.partial"))
    assert json.loads((root / "_fetch" / "manifest.json").read_text())["files"] == manifest["files"]

    # A second run finds the archives verified and their members in place: nothing is written.
    before = _mtimes(root, members)
    log = io.StringIO()
    again = fetch.run_fetch(_request(root, tmp_path / "registry", include_optional=True), out=log)
    assert again["counts"] == {"skipped": 2, "unpacked": len(members)}
    assert f"fetch: in place {RC} (" in log.getvalue()
    assert _mtimes(root, members) == before

    # The archive may be removed once unpacked: it is not fetched again while its members are in place.
    (root / RC).unlink()
    requests = len(upstream.requests)
    log = io.StringIO()
    third = fetch.run_fetch(_request(root, tmp_path / "registry", include_optional=True), out=log)
    assert third["status"] == "complete"
    assert third["files"][RC]["status"] == "skipped" and third["files"][RC]["unpack"]["status"] == "complete"
    assert "removed after unpacking" in log.getvalue()
    # (requests of the archive only: the server is shared, a late one of another test may land)
    assert not [path for path, _ in upstream.requests[requests:] if path.endswith(RC.split("/")[-1])]
    assert not (root / RC).exists()


def test_a_member_that_would_leave_the_folder_is_refused_and_reported(tmp_path, upstream):
    members = {"triviaqa-rc.tar.gz": {"qa/web-train.json": b"{}\n", "../escape.txt": b"outside\n",
                                      "evidence/web/1/1_1.txt": b"after\n"}}
    upstream_data.serve_trivia_qa(upstream, tmp_path / "registry", members)
    root = tmp_path / "in"
    log = io.StringIO()
    manifest = fetch.run_fetch(_request(root, tmp_path / "registry"), out=log)

    assert manifest["status"] == "incomplete" and manifest["unpack_failed"] == [RC]
    refused = [line for line in log.getvalue().splitlines() if "escape" in line]
    assert refused == [f"fetch: failed   {RC} (unpack: member '../escape.txt' would escape the archive folder)"]
    assert not (tmp_path / "escape.txt").exists() and not (root / "escape.txt").exists()
    assert manifest["files"][RC]["status"] == "fetched"
    assert manifest["files"][RC]["unpack"]["status"] == "failed"
    # The member before it is a member of the verified archive; none after it is written.
    assert manifest["files"]["triviaqa/qa/web-train.json"]["status"] == "unpacked"
    assert not (root / "triviaqa" / "evidence").exists()


def test_an_interrupted_unpacking_resumes_with_the_members_not_in_place(tmp_path, upstream, monkeypatch):
    upstream_data.serve_trivia_qa(upstream, tmp_path / "registry")
    root = tmp_path / "in"
    members = {dest: data for dest, (archive, data) in _member_dests().items() if archive == RC}
    real_write, calls = unpack._write_member, []

    def failing_write(store, location, stream):
        calls.append(location)
        if len(calls) == 4:  # the fourth member breaks off midway
            stream.read(3)
            raise OSError("disk went away")
        return real_write(store, location, stream)

    monkeypatch.setattr(unpack, "_write_member", failing_write)
    first = fetch.run_fetch(_request(root, tmp_path / "registry"), out=io.StringIO())
    assert first["status"] == "incomplete"
    assert first["files"][RC]["unpack"]["error"] == "OSError: disk went away"
    done = [dest for dest in members if first["files"].get(dest, {}).get("status") == "unpacked"]
    assert len(done) == 3 and not list(root.rglob("*.partial"))
    monkeypatch.setattr(unpack, "_write_member", real_write)

    before = _mtimes(root, done)
    log = io.StringIO()
    second = fetch.run_fetch(_request(root, tmp_path / "registry"), out=log)
    assert second["status"] == "complete"
    assert f"fetch: unpacked {RC} ({len(members) - 3} of {len(members)} members written" in log.getvalue()
    assert _mtimes(root, done) == before
    for dest, data in members.items():
        assert (root / dest).read_bytes() == data and second["files"][dest]["bytes"] == len(data)


@pytest.mark.parametrize("kind", ["gs", "s3"])
def test_members_are_unpacked_into_a_bucket(kind, tmp_path, upstream, request):
    client = request.getfixturevalue("gcs" if kind == "gs" else "s3")
    bucket = f"unpacked-{kind}"
    if kind == "gs":
        client.create_bucket(bucket)
        keys = lambda: {b.name: b.size for b in client.list_blobs(bucket)}
    else:
        client.create_bucket(Bucket=bucket)
        keys = lambda: {o["Key"]: o["Size"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])}
    upstream_data.serve_trivia_qa(upstream, tmp_path / "registry")
    dest = f"{kind}://{bucket}/in"
    manifest = fetch.run_fetch(_request(dest, tmp_path / "registry"), out=io.StringIO())
    assert manifest["status"] == "complete"
    members = {d: data for d, (archive, data) in _member_dests().items() if archive == RC}
    stored = keys()
    assert {d: stored.get(f"in/{d}") for d in members} == {d: len(data) for d, data in members.items()}
    log = io.StringIO()
    again = fetch.run_fetch(_request(dest, tmp_path / "registry"), out=log)
    assert again["counts"] == {"skipped": 1, "unpacked": len(members)}
    assert f"fetch: in place {RC} (" in log.getvalue()


def test_the_unpacked_release_is_judged_against_the_documented_total(tmp_path, upstream, capsys):
    upstream_data.serve_trivia_qa(upstream, tmp_path / "registry")
    root = tmp_path / "in"
    manifest = fetch.run_fetch(_request(root, tmp_path / "registry"), out=io.StringIO())
    assert manifest["status"] == "complete"
    # Removed after unpacking, the archive is not needed: its members stand for it.
    (root / RC).unlink()

    def build(output: str) -> dict:
        status = run(["build", "--input-root", str(root), "--output", str(tmp_path / output),
                      "--datasets", "trivia_qa", *TEST_BEAM_ARGS])
        assert status == 0, capsys.readouterr()
        return json.loads((tmp_path / output / "manifest.json").read_text())["datasets"]["trivia_qa"]

    entry = build("out")
    assert entry["input"] == {"published": True, "reasons": []}
    assert entry["verdict"] == "mismatch" and entry["expected"] == 73_346 and entry["rows"] == 6

    edited = root / "triviaqa" / "evidence" / "web" / "30" / "30_301.txt"
    edited.write_text(edited.read_text() + " edited", "utf-8")
    shutil.rmtree(tmp_path / "out")
    entry = build("out")
    assert entry["verdict"] == "partial input"
    assert entry["input"]["reasons"] == [
        "triviaqa/evidence/web/30/30_301.txt differs from the published file (size)"]


def test_the_progress_line_shows_each_archive_being_unpacked():
    progress = Progress(files=2, total_bytes=4096, interval=0)
    progress.add(4096)
    progress.unpacked(RC, 120, 3_000_000)
    assert progress.line().endswith(f"; unpacking {RC}: 120 members, 3.0 MB")
    progress.unpack_done(RC)
    assert "unpacking" not in progress.line()
