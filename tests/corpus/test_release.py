"""Whether a source's input is its published release: the rule behind `partial input`."""
from __future__ import annotations

import json

from pipelines.corpus import release

SHA_A, SHA_B, SHA_X = "a" * 64, "b" * 64, "x" * 64
TWO_FILES = release.Release(required=("src/a.json", "src/b.json"), published={})


def _read(path: str, size: int, sha256: str | None = None, **extra) -> dict:
    return {"path": path, "bytes": size, **({"sha256": sha256} if sha256 else {}), **extra}


def test_every_required_file_fetched_and_unchanged_is_the_published_release():
    fetched = {"src/a.json": (10, SHA_A), "src/b.json": (20, SHA_B)}
    read = [_read("src/a.json", 10, SHA_A, sha256_from="fetch manifest"), _read("src/b.json", 20, SHA_B)]
    assert release.input_status(TWO_FILES, {"src/a.json", "src/b.json"}, read, fetched) == \
        {"published": True, "reasons": []}


def test_without_checksums_a_fetched_file_is_known_from_its_record():
    fetched = {"src/a.json": (10, SHA_A), "src/b.json": (20, SHA_B)}
    read = [_read("src/a.json", 10), _read("src/b.json", 20)]
    assert release.input_status(TWO_FILES, {"src/a.json", "src/b.json"}, read, fetched)["published"]


def test_a_required_file_not_in_the_input_makes_it_partial():
    status = release.input_status(TWO_FILES, {"src/a.json"}, [_read("src/a.json", 10)],
                                  {"src/a.json": (10, SHA_A)})
    assert status == {"published": False, "reasons": ["1 of 2 required files not in the input (src/b.json)"]}


def test_a_required_file_present_but_not_read_still_counts_as_there():
    # SQuAD reads v1.1 when both train files are there; v2.0 is present, not read.
    status = release.input_status(TWO_FILES, {"src/a.json", "src/b.json"}, [_read("src/a.json", 10)],
                                  {"src/a.json": (10, SHA_A)})
    assert status["published"]


def test_files_without_a_fetch_record_are_not_known_to_be_published():
    read = [_read("src/a.json", 10, SHA_A), _read("src/b.json", 20, SHA_B), _read("src/extra.txt", 5, SHA_X)]
    status = release.input_status(TWO_FILES, {"src/a.json", "src/b.json", "src/extra.txt"}, read,
                                  {"src/a.json": (10, SHA_A), "src/b.json": (20, SHA_B)})
    assert status["reasons"] == ["src/extra.txt is not known to be the published file (no fetch record)"]
    status = release.input_status(TWO_FILES, {"src/a.json", "src/b.json"}, read[:2], {})
    assert status["reasons"] == ["2 input files are not known to be the published ones (no fetch record)"]


def test_a_file_changed_after_the_fetch_differs_from_the_published_one():
    fetched = {"src/a.json": (10, SHA_A), "src/b.json": (20, SHA_B)}
    present = {"src/a.json", "src/b.json"}
    cut = release.input_status(TWO_FILES, present, [_read("src/a.json", 7), _read("src/b.json", 20)], fetched)
    assert cut["reasons"] == ["src/a.json differs from the published file (size)"]
    # Same size, other bytes: only the checksum the build took tells.
    other = release.input_status(TWO_FILES, present, [_read("src/a.json", 10, SHA_X), _read("src/b.json", 20)],
                                 fetched)
    assert other["reasons"] == ["src/a.json differs from the published file (sha256)"]


def test_a_published_sha256_proves_a_file_without_a_fetch():
    published = release.Release(required=("src/a.json",), published={"src/a.json": (None, SHA_A)})
    assert release.input_status(published, {"src/a.json"}, [_read("src/a.json", 10, SHA_A)], {})["published"]
    wrong = release.input_status(published, {"src/a.json"}, [_read("src/a.json", 10, SHA_X)], {})
    assert wrong["reasons"] == ["src/a.json differs from the published file (sha256)"]
    unchecked = release.input_status(published, {"src/a.json"}, [_read("src/a.json", 10)], {})
    assert unchecked["reasons"] == [("src/a.json was not checked against its published sha256 "
                                     "(--no-input-checksums, no fetch record)")]


def test_a_published_size_alone_only_catches_a_cut_file():
    sized = release.Release(required=("src/a.json",), published={"src/a.json": (10, None)})
    assert release.input_status(sized, {"src/a.json"}, [_read("src/a.json", 9)], {})["reasons"] == \
        ["src/a.json differs from the published file (size)"]
    assert release.input_status(sized, {"src/a.json"}, [_read("src/a.json", 10)], {})["reasons"] == \
        ["src/a.json is not known to be the published file (no fetch record)"]


def test_required_files_come_from_upstream_json_without_the_optional_ones():
    squad = release.published_release("squad", {})
    assert squad.required == ("squad_v2/train-v1.1.json", "squad_v2/train-v2.0.json")
    quora = release.published_release("quora", {})
    assert quora.published["quora/quora_duplicate_questions.tsv"][0] == 58_176_133


def test_a_listed_release_is_what_the_fetch_listed_for_that_source():
    records = {"stackexchange/a.7z": {"source": "stackexchange", "status": "fetched", "bytes": 3, "sha256": SHA_A},
               "stackexchange/b.7z": {"source": "stackexchange", "status": "failed"},
               "gooaq/gooaq.jsonl": {"source": "gooaq", "status": "fetched", "bytes": 1, "sha256": SHA_B}}
    listed = release.published_release("stackexchange", records)
    assert listed.required == ("stackexchange/a.7z", "stackexchange/b.7z")
    status = release.input_status(listed, {"stackexchange/a.7z"}, [_read("stackexchange/a.7z", 3)],
                                  release.fetched_checksums("unused", records))
    assert status["reasons"] == ["1 of 2 required files not in the input (stackexchange/b.7z)"]
    unlisted = release.published_release("stackexchange", {})
    assert unlisted.required is None
    assert release.input_status(unlisted, set(), [], {})["reasons"] == [
        "the release is a listing of files, and no fetch of it is recorded"]


def test_long_lists_of_names_are_cut_short():
    many = release.Release(required=tuple(f"src/{n}.gz" for n in range(21)), published={})
    status = release.input_status(many, {"src/0.gz"}, [], {})
    assert status["reasons"] == [("20 of 21 required files not in the input "
                                  "(src/1.gz, src/2.gz, src/3.gz and 17 more)")]


def test_fetch_records_are_read_from_the_fetch_manifest(tmp_path):
    assert release.fetch_records(str(tmp_path)) == {}
    (tmp_path / "_fetch").mkdir()
    (tmp_path / "_fetch" / "manifest.json").write_text(json.dumps({"files": {
        "quora/q.tsv": {"source": "quora", "status": "fetched", "bytes": 5, "sha256": SHA_A},
        "quora/r.tsv": {"source": "quora", "status": "no-url", "bytes": None, "sha256": None}}}))
    records = release.fetch_records(str(tmp_path))
    assert set(records) == {"quora/q.tsv", "quora/r.tsv"}
    assert release.fetched_checksums(str(tmp_path)) == {"quora/q.tsv": (5, SHA_A)}


ARCHIVE = "src/release.tar.gz"
UNPACKING = {"files": [{"dest": ARCHIVE, "unpack": True},
                       {"dest": "src/extra.tar.gz", "unpack": True, "optional": True}]}


def _unpacked(unpack_status: str = "complete", archive_status: str = "fetched", unpacked_from: str = SHA_A) -> dict:
    """Fetch records of ``ARCHIVE`` unpacked into two members and a hidden one."""
    members = {"src/qa/1.json": (10, SHA_B), "src/evidence/2.txt": (20, SHA_X), "src/evidence/._2.txt": (1, SHA_X)}
    records = {dest: {"source": "src", "status": "unpacked", "from": ARCHIVE, "bytes": size, "sha256": sha}
               for dest, (size, sha) in members.items()}
    records[ARCHIVE] = {"source": "src", "status": archive_status, "bytes": 9, "sha256": SHA_A,
                        "unpack": {"status": unpack_status, "archive_sha256": unpacked_from, "members": 3}}
    return records


def test_members_unpacked_from_a_verified_archive_are_the_published_release():
    records = _unpacked()
    fetched = release.fetched_checksums("unused", records)
    assert fetched["src/qa/1.json"] == (10, SHA_B) and fetched["src/evidence/2.txt"] == (20, SHA_X)
    unpacked = release.published_release("src", records, UNPACKING)
    # The archive stands for its members (the hidden one no build sees), and may be removed.
    assert unpacked.required == ("src/evidence/2.txt", "src/qa/1.json") and unpacked.unfinished == {}
    read = [_read("src/qa/1.json", 10), _read("src/evidence/2.txt", 20)]
    assert release.input_status(unpacked, {"src/qa/1.json", "src/evidence/2.txt"}, read, fetched) == \
        {"published": True, "reasons": []}
    # A member removed is a required file missing, whether or not the archive is there.
    status = release.input_status(unpacked, {ARCHIVE, "src/qa/1.json"}, read[:1], fetched)
    assert status["reasons"] == ["1 of 2 required files not in the input (src/evidence/2.txt)"]
    # A member changed after the unpacking differs from the published one.
    status = release.input_status(unpacked, {"src/qa/1.json", "src/evidence/2.txt"},
                                  [_read("src/qa/1.json", 11), read[1]], fetched)
    assert status["reasons"] == ["src/qa/1.json differs from the published file (size)"]


def test_an_unpacking_not_complete_or_not_from_the_verified_archive_is_not_the_release():
    present = {ARCHIVE, "src/qa/1.json", "src/evidence/2.txt"}
    read = [_read("src/qa/1.json", 10), _read("src/evidence/2.txt", 20)]
    cases = {("failed", "fetched", SHA_A): "the unpacking failed",
             ("running", "skipped", SHA_A): "the unpacking was interrupted",
             ("complete", "fetched", SHA_B): "its members come from another version of it",
             ("complete", "failed", SHA_A): "the archive did not verify"}
    for (unpack_status, archive_status, unpacked_from), why in cases.items():
        records = _unpacked(unpack_status, archive_status, unpacked_from)
        unpacked = release.published_release("src", records, UNPACKING)
        assert unpacked.required == (ARCHIVE,)
        status = release.input_status(unpacked, present, read, release.fetched_checksums("unused", records))
        assert status["reasons"][0] == f"{ARCHIVE} was not unpacked completely by corpus fetch ({why})"
    # Members written before the unpacking failed are still the published files; the others are not.
    failed = _unpacked("failed")
    assert "src/qa/1.json" in release.fetched_checksums("unused", failed)
    assert "src/qa/1.json" not in release.fetched_checksums("unused", _unpacked("complete", "failed"))
    # A member record lost: the unpacking no longer accounts for every member.
    records = _unpacked()
    del records["src/qa/1.json"]
    assert release.published_release("src", records, UNPACKING).unfinished == {
        ARCHIVE: "not every member is recorded"}


def test_the_package_marks_the_trivia_qa_archives_to_unpack():
    entry = release.upstream_entry("trivia_qa")
    assert {item["dest"]: item.get("unpack") for item in entry["files"]} == {
        "triviaqa/triviaqa-rc.tar.gz": True, "triviaqa/triviaqa-unfiltered.tar.gz": True}
    assert "by hand" not in entry["notes"] and "after fetching" not in entry["notes"]
