"""Whether a build read the published release of a source.

A count can only be judged against its documented total when the input is the release that
total describes. The input of a source is its published release when:

- every required file is in the input: the files of ``upstream.json`` not marked
  ``optional``, or, for a source published as a listing (StackExchange, WikiAnswers), every
  file that ``corpus fetch`` listed and recorded for it. An archive that the fetch unpacked
  completely (its record is verified and has a ``complete`` ``unpack`` summary for the
  same sha256) stands for its members instead: each member it recorded must be in the
  input (hidden names aside, which no build lists), and the archive itself may be gone.
  A required archive whose unpacking the fetch began but did not complete is not the
  release, present or not; and
- every file the build reads is known to be the published one: its SHA-256 equals the one
  ``upstream.json`` gives, or ``corpus fetch`` verified it (``_fetch/manifest.json`` of the
  input root records it as fetched or skipped, with the same size), or it is a member that
  the fetch recorded as ``unpacked`` from such a verified archive, with the same size.

A file the fetch verified is known without reading it, so this holds with
``--no-input-checksums`` too. Any other input is partial: :func:`input_status` says why, one
line per reason.
"""
from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from importlib import resources

from pipelines.engine import files

FETCH_MANIFEST = ("_fetch", "manifest.json")
# Fetch outcomes whose file verified (an unpacked archive may since have been removed).
VERIFIED = ("fetched", "skipped")
# The status of an archive member the fetch unpacked; its record names the archive in "from".
UNPACKED = "unpacked"
# File names a reason spells out before it says "and N more".
NAMES_SHOWN = 3


@dataclass(frozen=True)
class Release:
    """The published files of one source.

    Attributes:
        required: destinations (relative to the input root) of the files the release is
            made of; ``None`` for a listed release that no fetch recorded.
        published: ``{dest: (bytes, sha256)}`` as ``upstream.json`` publishes them (either
            may be ``None``).
        unfinished: required archives whose unpacking the fetch began and did not complete,
            ``{dest: why}``.
    """

    required: tuple[str, ...] | None
    published: dict
    unfinished: dict = field(default_factory=dict)


def fetch_records(input_root: str) -> dict:
    """Every file record of the fetch manifest of ``input_root``, by destination; empty when
    no fetch filled the root."""
    path = files.join(input_root, *FETCH_MANIFEST)
    if not files.exists(path):
        return {}
    with files.open_raw(path) as stream:
        return json.loads(stream.read().decode("utf-8")).get("files", {})


def _unpacked_from(archive: dict | None) -> bool:
    """Whether the members recorded from ``archive`` came out of it as it verified: its
    record is verified and its ``unpack`` summary names the same archive."""
    archive = archive or {}
    summary = archive.get("unpack") or {}
    return (archive.get("status") in VERIFIED and bool(archive.get("sha256"))
            and summary.get("archive_sha256") == archive.get("sha256"))


def fetched_checksums(input_root: str, records: dict | None = None) -> dict:
    """``{dest: (bytes, sha256)}`` of the files ``corpus fetch`` verified into ``input_root``,
    and of the members it unpacked from verified archives (from its fetch manifest, or from
    ``records`` already read from it)."""
    records = fetch_records(input_root) if records is None else records
    known = {}
    for dest, record in records.items():
        if not record.get("sha256"):
            continue
        if record.get("status") in VERIFIED or (
                record.get("status") == UNPACKED and _unpacked_from(records.get(record.get("from")))):
            known[dest] = (record["bytes"], record["sha256"])
    return known


def _unpacked_members(records: dict) -> dict[str, list[str]]:
    """``{archive dest: [member dest, ...]}`` of every verified archive unpacked completely
    (a record for each of the members its summary counts), with the members a build can
    see (no hidden name)."""
    members: dict[str, list[str]] = {}
    for dest, record in records.items():
        if record.get("status") == UNPACKED:
            members.setdefault(record.get("from"), []).append(dest)
    complete = {}
    for archive, found in members.items():
        record = records.get(archive)
        if (_unpacked_from(record) and record["unpack"].get("status") == "complete"
                and record["unpack"].get("members") == len(found)):
            complete[archive] = sorted(d for d in found if not posixpath.basename(d).startswith("."))
    return complete


def _why_unfinished(archive: dict) -> str:
    """Why the unpacking recorded in ``archive`` (not complete) does not give the release."""
    summary = archive["unpack"]
    if archive.get("status") not in VERIFIED:
        return "the archive did not verify"
    if summary.get("archive_sha256") != archive.get("sha256"):
        return "its members come from another version of it"
    if summary.get("status") == "complete":
        return "not every member is recorded"
    return {"running": "the unpacking was interrupted"}.get(summary.get("status"), "the unpacking failed")


def upstream_entry(source_name: str) -> dict:
    """The source's ``upstream.json`` (``pipelines/sources/<source>/upstream.json``); empty
    for a source without one, whose every file is then unknown."""
    path = resources.files("pipelines.sources").joinpath(source_name, "upstream.json")
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def published_release(source_name: str, records: dict, entry: dict | None = None) -> Release:
    """The release of ``source_name``: its required files from ``upstream.json`` (``entry``
    when given), or from the fetch ``records`` for a listed release."""
    entry = upstream_entry(source_name) if entry is None else entry
    published = {item["dest"]: (item.get("bytes"), item.get("sha256")) for item in entry.get("files", [])}
    if entry.get("listing"):
        listed = sorted(dest for dest, record in records.items()
                        if record.get("source") == source_name and record.get("status") != UNPACKED)
        required = listed or None
    else:
        required = [item["dest"] for item in entry.get("files", []) if not item.get("optional")]
    if required is None:
        return Release(None, published)
    # An archive unpacked completely is required as its members (it may then be removed).
    unpacked = _unpacked_members(records)
    unfinished = {dest: _why_unfinished(records[dest]) for dest in required
                  if dest not in unpacked and (records.get(dest) or {}).get("unpack")}
    return Release(tuple(member for dest in required for member in unpacked.get(dest, [dest])), published,
                   unfinished)


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:NAMES_SHOWN])
    more = len(paths) - NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown


def input_status(release: Release, present: set[str], read: list[dict], fetched: dict) -> dict:
    """Whether the input of one source is its published release, and if not, why.

    Args:
        release: the source's published files (:func:`published_release`).
        present: every file below the source's folder, relative to the input root.
        read: the files the build read, as the manifest's ``inputs`` give them: ``path``,
            ``bytes`` and, when checksums were taken, ``sha256``.
        fetched: the files a fetch verified (:func:`fetched_checksums`).
    Returns:
        ``{"published": bool, "reasons": [one line per reason]}``.
    """
    reasons = []
    missing = [dest for dest in release.required or () if dest not in present]
    if missing:
        reasons.append(f"{len(missing)} of {len(release.required)} required files not in the input "
                       f"({_names(missing)})")
    for dest, why in sorted(release.unfinished.items()):
        reasons.append(f"{dest} was not unpacked completely by corpus fetch ({why})")
    unknown, differing, unchecked = [], [], []
    for item in read:
        path, size = item["path"], item["bytes"]
        published_bytes, published_sha = release.published.get(path, (None, None))
        record = fetched.get(path)
        if record:
            # The fetch verified the file against what is published, or recorded it first.
            published_bytes, published_sha = published_bytes or record[0], published_sha or record[1]
        if published_bytes is not None and size != published_bytes:
            differing.append((path, "size"))
        elif published_sha is None:
            unknown.append(path)
        else:
            actual = item.get("sha256") or (record[1] if record and record[0] == size else None)
            if actual is None:
                unchecked.append(path)
            elif actual != published_sha:
                differing.append((path, "sha256"))
    if len(differing) == 1:
        reasons.append(f"{differing[0][0]} differs from the published file ({differing[0][1]})")
    elif differing:
        reasons.append(f"{len(differing)} input files differ from the published ones "
                       f"({_names([path for path, _ in differing])})")
    if len(unknown) == 1:
        reasons.append(f"{unknown[0]} is not known to be the published file (no fetch record)")
    elif unknown:
        reasons.append(f"{len(unknown)} input files are not known to be the published ones "
                       "(no fetch record)")
    if len(unchecked) == 1:
        reasons.append(f"{unchecked[0]} was not checked against its published sha256 "
                       "(--no-input-checksums, no fetch record)")
    elif unchecked:
        reasons.append(f"{len(unchecked)} input files were not checked against their published "
                       "sha256 (--no-input-checksums, no fetch record)")
    if release.required is None and not reasons:
        reasons.append("the release is a listing of files, and no fetch of it is recorded")
    return {"published": not reasons, "reasons": reasons}


def source_input_status(source_name: str, input_root: str, source_dir: str, read: list[dict],
                        records: dict) -> dict:
    """:func:`input_status` of one source of a build, from its folder's listing, the files
    the build read and the fetch ``records`` of the input root (:func:`fetch_records`)."""
    present = {files.relative_to(path, input_root) for path, _size in files.list_dir(source_dir)}
    return input_status(published_release(source_name, records), present, read,
                        fetched_checksums(input_root, records))
