"""Registries and upstream files for the fetch tests (served by the loopback upstream)."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import py7zr

from pipelines.corpus import registry

SAMPLE = Path(registry.load_source("stackexchange").sample_root()) / "stackexchange"


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
