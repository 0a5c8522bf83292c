"""Registries and upstream files for the fetch tests (served by the loopback upstream)."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import py7zr

from pipelines.corpus import registry

SAMPLE = Path(registry.load_source("stackexchange").sample_root()) / "stackexchange"
TRIVIA_QA_SAMPLE = Path(registry.load_source("trivia_qa").sample_root()) / "triviaqa"


def write_registry(root: Path, source: str, doc: dict) -> Path:
    """Write ``root/<source>/upstream.json`` with licence and citation filled in."""
    folder = root / source
    folder.mkdir(parents=True, exist_ok=True)
    full = {"source": source, "licence": "test licence", "citation": "test citation", **doc}
    (folder / "upstream.json").write_text(json.dumps(full), "utf-8")
    return root


def _seven_zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
    return buffer.getvalue()


def stackexchange_archives() -> dict[str, bytes]:
    """The bundled StackExchange sample as upstream publishes it: one .7z per site."""
    archives = {p.name: p.read_bytes() for p in sorted(SAMPLE.glob("*.7z"))}
    for site in sorted(p for p in SAMPLE.iterdir() if p.is_dir()):
        archives[f"{site.name}.7z"] = _seven_zip(site)
    return archives


def serve_stackexchange(upstream, registry_root: Path, unpublished: str | None = None) -> dict[str, bytes]:
    """Serve the sample archives and an archive.org-style item listing; write the registry.

    Args:
        upstream: the loopback upstream.
        registry_root: folder receiving ``stackexchange/upstream.json``.
        unpublished: an archive whose checksums the listing leaves out (so the first
            verified fetch must register it).
    Returns:
        name -> bytes of every archive served.
    """
    archives = stackexchange_archives()
    listing = {"files": [{"name": "stackexchange_meta.xml", "size": "10", "source": "metadata"}]}
    for name, data in archives.items():
        upstream.add(f"/download/stackexchange/{name}", data)
        entry = {"name": name, "size": str(len(data)), "source": "original"}
        if name != unpublished:
            entry.update(md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest())
        listing["files"].append(entry)
    upstream.add("/metadata/stackexchange", json.dumps(listing).encode(), "application/json")
    write_registry(registry_root, "stackexchange", {
        "folder": "stackexchange", "files": [],
        "listing": {"kind": "archive.org", "metadata_url": upstream.base_url + "/metadata/stackexchange",
                    "download_url": upstream.base_url + "/download/stackexchange/{name}",
                    "include": ["*.7z"]}})
    return archives


def payload(size: int, seed: int) -> bytes:
    """Deterministic, incompressible-looking bytes."""
    out, block = bytearray(), hashlib.sha256(str(seed).encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out.extend(block)
    return bytes(out[:size])


def tar_gz(members: dict[str, bytes]) -> bytes:
    """A gzip tarball of ``members`` (name -> bytes, in that order), with their folders."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        folders = set()
        for name, data in members.items():
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                folder = "/".join(parts[:depth])
                if folder not in folders and ".." not in folder:
                    folders.add(folder)
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    archive.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def trivia_qa_members() -> dict[str, dict[str, bytes]]:
    """The bundled TriviaQA sample in the member layout of the published archives:
    ``triviaqa-rc.tar.gz`` holds ``qa/...`` and ``evidence/...``,
    ``triviaqa-unfiltered.tar.gz`` holds ``triviaqa-unfiltered/...``."""
    rc = TRIVIA_QA_SAMPLE / "triviaqa-rc"
    unfiltered = TRIVIA_QA_SAMPLE / "triviaqa-unfiltered"
    return {
        "triviaqa-rc.tar.gz": {p.relative_to(rc).as_posix(): p.read_bytes()
                               for p in sorted(rc.rglob("*")) if p.is_file()},
        "triviaqa-unfiltered.tar.gz": {p.relative_to(TRIVIA_QA_SAMPLE).as_posix(): p.read_bytes()
                                       for p in sorted(unfiltered.rglob("*")) if p.is_file()},
    }


def serve_trivia_qa(upstream, registry_root: Path, members: dict | None = None) -> dict[str, bytes]:
    """Serve TriviaQA-shaped archives (``members``: archive name -> member name -> bytes;
    default :func:`trivia_qa_members`) and write the registry, both archives marked
    ``unpack`` as the package's is. Returns archive name -> bytes served."""
    members = trivia_qa_members() if members is None else members
    archives = {name: tar_gz(content) for name, content in members.items()}
    entries = [{"dest": f"triviaqa/{name}", "url": upstream.add(f"/triviaqa/data/{name}", data),
                "sha256": None, "unpack": True, "optional": name != "triviaqa-rc.tar.gz"}
               for name, data in archives.items()]
    write_registry(registry_root, "trivia_qa", {"folder": "triviaqa", "files": entries})
    return archives
