"""The upstream registry: what ``corpus fetch`` downloads and where each file goes. Every
source has an ``upstream.json`` in its package folder
(``pipelines/sources/<source>/upstream.json``) naming the published files with their URL and
mirrors, their destination below the input root (the layout ``corpus build --input-root``
reads), size and checksums where published, licence and citation, and whether an archive is
unpacked beside itself once verified (``"unpack": true``); a source with too many
files to list by hand names a *listing* instead, expanded when a fetch is planned
(``archive.org`` item metadata, which also publishes md5 and sha1 per file, or an
``http-index`` directory page), and sources published as Hugging Face datasets may name
``hub`` entries for ``--origin hub``. This module only reads and lists; it transfers
nothing.
"""
from __future__ import annotations

import fnmatch
import html.parser
import json
import urllib.parse
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path


class FetchError(Exception):
    """A request that cannot be carried out (unknown source, bad registry): one line."""


@dataclass
class UpstreamFile:
    """One published file.

    Attributes:
        source: the source module name.
        dest: destination below the input root, ``<folder>/<path>``.
        url: where it is published (``None`` when no stable public URL is known).
        mirrors: further URLs tried in order when one does not serve the file.
        bytes: published size, or ``None``.
        sha256, md5, sha1: published checksums (hex), or ``None``.
        optional: fetched only with ``--include-optional`` (not read by default builds).
        note: anything a user should know about this file.
        unpack: an archive whose members the build reads: once verified, it is unpacked
            into its own folder (:mod:`pipelines.fetch.unpack`).
    """

    source: str
    dest: str
    url: str | None
    mirrors: tuple[str, ...] = ()
    bytes: int | None = None
    sha256: str | None = None
    md5: str | None = None
    sha1: str | None = None
    optional: bool = False
    note: str = ""
    unpack: bool = False


@dataclass
class HubEntry:
    """A split of a Hugging Face dataset written out as gzip JSON lines.

    Attributes:
        source: the source module name.
        dataset: Hub dataset id (or its folder under ``--hub-mirror``).
        config: the dataset's configuration name, or ``None``.
        split: the split to read.
        dest: destination below the input root.
    """

    source: str
    dataset: str
    config: str | None
    split: str
    dest: str


@dataclass
class UpstreamSource:
    """A source's ``upstream.json``.

    Attributes:
        name: source module name; folder: its folder under the input root.
        licence, citation, homepage: as published.
        files: the files listed by hand.
        listing: how to list the files of a source with many (``kind``, URLs, patterns).
        hub: Hugging Face dataset entries for ``--origin hub``.
    """

    name: str
    folder: str
    licence: str
    citation: str
    homepage: str
    files: list[UpstreamFile] = field(default_factory=list)
    listing: dict | None = None
    hub: list[HubEntry] = field(default_factory=list)


def _default_registry_dir() -> Path:
    """The folder holding ``<source>/upstream.json`` of the installed package."""
    return Path(str(resources.files("pipelines.sources")))


def _parse_source(name: str, doc: dict) -> UpstreamSource:
    folder = doc["folder"]
    files = []
    for item in doc.get("files", []):
        dest = item["dest"]
        if not dest.startswith(folder + "/") or ".." in dest.split("/"):
            raise FetchError(f"{name}/upstream.json: dest {dest!r} must lie below {folder}/")
        if not isinstance(item.get("unpack", False), bool):
            raise FetchError(f"{name}/upstream.json: unpack of {dest!r} must be true or false")
        files.append(UpstreamFile(
            source=name, dest=dest, url=item.get("url"), mirrors=tuple(item.get("mirrors", ())),
            bytes=item.get("bytes"), sha256=item.get("sha256"), md5=item.get("md5"),
            sha1=item.get("sha1"), optional=bool(item.get("optional", False)),
            note=item.get("note", ""), unpack=item.get("unpack", False)))
    hub = [HubEntry(source=name, dataset=h["dataset"], config=h.get("config"), split=h["split"],
                    dest=h["dest"]) for h in doc.get("hub", [])]
    return UpstreamSource(name=name, folder=folder, licence=doc["licence"],
                          citation=doc["citation"], homepage=doc.get("homepage", ""),
                          files=files, listing=doc.get("listing"), hub=hub)


def load_registry(registry_dir: str | Path | None = None) -> dict[str, UpstreamSource]:
    """Every ``<source>/upstream.json`` below ``registry_dir`` (default: the package's).

    Args:
        registry_dir: a folder with one sub-folder per source, e.g. a copy of the package's
            registry with URLs pointing at an internal mirror.
    Raises:
        FetchError: an ``upstream.json`` that is not valid.
    """
    root = Path(registry_dir) if registry_dir else _default_registry_dir()
    sources = {}
    for path in sorted(root.glob("*/upstream.json")):
        name = path.parent.name
        try:
            sources[name] = _parse_source(name, json.loads(path.read_text("utf-8")))
        except (KeyError, TypeError, ValueError) as exc:
            raise FetchError(f"{path}: not a valid upstream registry entry ({exc})") from None
    return sources


# -- listings -----------------------------------------------------------------------------
class _Links(html.parser.HTMLParser):
    """Collects the ``href`` of every ``<a>`` of a directory index page."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


def _wanted(name: str, listing: dict) -> bool:
    include = listing.get("include", ["*"])
    exclude = listing.get("exclude", [])
    return (any(fnmatch.fnmatch(name, p) for p in include)
            and not any(fnmatch.fnmatch(name, p) for p in exclude))


def _list_archive_org(source: UpstreamSource, listing: dict, get_json) -> list[UpstreamFile]:
    """Files of an archive.org item from its metadata (names, sizes, md5, sha1)."""
    metadata = get_json(listing["metadata_url"])
    files = []
    for item in metadata.get("files", []):
        name = item.get("name", "")
        if "/" in name or not _wanted(name, listing):
            continue
        files.append(UpstreamFile(
            source=source.name, dest=f"{source.folder}/{name}",
            url=listing["download_url"].format(name=urllib.parse.quote(name)),
            bytes=int(item["size"]) if item.get("size") else None,
            md5=item.get("md5"), sha1=item.get("sha1")))
    return files


def _list_http_index(source: UpstreamSource, listing: dict, get_text) -> list[UpstreamFile]:
    """Files linked from a directory index page (Apache/nginx style)."""
    page_url = listing["index_url"]
    links = _Links()
    links.feed(get_text(page_url))
    files, seen = [], set()
    for href in links.hrefs:
        url = urllib.parse.urljoin(page_url, href)
        name = urllib.parse.unquote(url.rsplit("/", 1)[-1])
        if not name or name in seen or not url.startswith(page_url) or not _wanted(name, listing):
            continue
        seen.add(name)
        files.append(UpstreamFile(source=source.name, dest=f"{source.folder}/{name}", url=url))
    return files


def expand_listing(source: UpstreamSource, get_json, get_text) -> list[UpstreamFile]:
    """The files a source's ``listing`` names today.

    Args:
        source: the source.
        get_json, get_text: fetch a URL as parsed JSON / as text (with retries).
    """
    listing = source.listing
    if not listing:
        return []
    if listing["kind"] == "archive.org":
        return _list_archive_org(source, listing, get_json)
    if listing["kind"] == "http-index":
        return _list_http_index(source, listing, get_text)
    raise FetchError(f"{source.name}: unknown listing kind {listing['kind']!r}")
