"""Evaluation sets a build is decontaminated against (``corpus build --decontaminate PATH...``).

A PATH is one evaluation set, named after the folder or the file's stem:

* a folder in the BEIR layout: ``queries.jsonl`` (``{"_id", "text"}`` a line),
  ``corpus.jsonl`` (``{"_id", "title", "text"}``) and ``qrels/*.tsv``
  (``query-id<TAB>corpus-id<TAB>score``, with or without the header line). Its texts are
  the queries named in the qrels files present (every query when there is no ``qrels``
  folder: BEIR's ``queries.jsonl`` of MS MARCO also holds the half million training
  queries, the split files say which are evaluated) and the ``text`` of every passage
  relevant (score > 0) to one of them, whose id is written ``corpus:<id>``;
* a JSON-lines file (``.jsonl``): a ``text`` field a line, the id from ``_id`` or ``id``;
* a TSV or text file (``.tsv``, ``.txt``): ``id<TAB>text`` or one text a line (a first line
  ``id<TAB>...``, ``_id``, ``qid`` or ``query-id`` is a header).

Files may be gzip-compressed. They are streamed line by line (only the passages of
``corpus.jsonl`` that are relevant are parsed) and checksummed as they are read, for the
build's fingerprint. Anything unreadable is an :class:`EvalSetError` of one line naming the
file, and the line where there is one.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from pipelines.corpus.overlap import EvalIndex
from pipelines.engine import files

_PLAIN_SUFFIXES = (".jsonl", ".tsv", ".txt")
_JSON_OPTIONS = pa_json.ParseOptions(
    explicit_schema=pa.schema([("_id", pa.string()), ("id", pa.string()), ("text", pa.string())]),
    unexpected_field_behavior="ignore")
_JSON_BATCH = 1 << 14
_HEADER_IDS = {"id", "_id", "qid", "query-id", "query_id", "docid", "doc_id", "corpus-id"}
# The id of a BEIR line, read without parsing the line (most passages are not relevant,
# and MS MARCO's queries.jsonl holds half a million training queries).
_LEADING_ID = re.compile(rb'^\s*\{\s*"_id"\s*:\s*"((?:[^"\\]|\\.)*)"')


class EvalSetError(Exception):
    """An evaluation set that cannot be read: one line naming the file."""


@dataclass(frozen=True)
class EvalSets:
    """The evaluation sets of a build.

    Attributes:
        index: the :class:`EvalIndex` of their texts.
        files: per file read, ``{"evalset", "path", "bytes", "sha256"}``, in reading order.
        counts: per evaluation set, ``{"queries": n, "passages": n}``, and the ids its qrels
            name that its files lack (``"queries_missing"``, ``"passages_missing"``).
    """

    index: EvalIndex
    files: list
    counts: dict


def evalset_name(path: str) -> str:
    """The name of the evaluation set at ``path``: the folder's or the file's stem."""
    name = path.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".gz",) + _PLAIN_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def read_evalsets(paths: Sequence[str]) -> EvalSets:
    """Read every evaluation set of ``paths`` into one index.

    Raises:
        EvalSetError: a path that is neither a BEIR folder nor a ``.jsonl``/``.tsv``/``.txt``
            file, two sets of one name, an unreadable file or line, a set without a text.
    """
    names: dict[str, str] = {}
    for path in paths:
        name = evalset_name(path)
        if name in names:
            raise EvalSetError(f"{path}: a second evaluation set named {name!r} (the first is {names[name]})")
        names[name] = path
    records: list[dict] = []
    counts: dict[str, dict] = {}

    def entries():
        for name, path in names.items():
            counts[name] = {"queries": 0, "passages": 0}
            for entry_id, text, kind in _evalset_texts(path, name, records, counts[name]):
                counts[name][kind] += 1
                yield name, entry_id, text
            if not counts[name]["queries"] + counts[name]["passages"]:
                raise EvalSetError(f"{path}: the evaluation set {name!r} has no text")

    return EvalSets(EvalIndex.build(entries()), records, counts)


def evalset_checksums(paths: Sequence[str]) -> list[dict]:
    """The files of the evaluation sets with their size and SHA-256, without parsing them:
    ``{"evalset", "path", "bytes", "sha256"}`` each, as :attr:`EvalSets.files` lists them."""
    records = []
    for path in paths:
        for file_path in _files_of(path):
            with _Reader(file_path, evalset_name(path), records) as reader:
                reader.drain()
    return records


def _files_of(path: str) -> list[str]:
    """The files an evaluation set reads, in reading order."""
    if _is_plain(path):
        return [path]
    found = [files.join(path, name) for name in ("queries.jsonl", "corpus.jsonl")
             if files.exists(files.join(path, name))]
    return _qrels_files(path) + found


def _is_plain(path: str) -> bool:
    return path.removesuffix(".gz").endswith(_PLAIN_SUFFIXES)


def _qrels_files(path: str) -> list[str]:
    return sorted(p for p, _size in files.list_files(files.join(path, "qrels", "*.tsv")))


def _evalset_texts(path: str, name: str, records: list, counts: dict) -> Iterator[tuple[str, str, str]]:
    """``(id, text, "queries" | "passages")`` of one evaluation set."""
    if _is_plain(path):
        if not files.exists(path):
            raise EvalSetError(f"{path}: no such evaluation file")
        read = _jsonl_texts if path.removesuffix(".gz").endswith(".jsonl") else _tsv_texts
        for entry_id, text in read(path, name, records):
            yield entry_id, text, "queries"
        return
    queries_path = files.join(path, "queries.jsonl")
    if not files.exists(queries_path):
        raise EvalSetError(f"{path}: neither a BEIR folder (queries.jsonl, corpus.jsonl, qrels/*.tsv) "
                           "nor a .jsonl, .tsv or .txt file")
    qrels = _qrels_files(path)
    wanted, relevant = set(), set()
    for qrels_path in qrels:
        _read_qrels(qrels_path, name, records, wanted, relevant)
    seen = set()
    for entry_id, text in _jsonl_texts(queries_path, name, records, only=wanted if qrels else None):
        seen.add(entry_id)
        yield entry_id, text, "queries"
    counts["queries_missing"] = len(wanted - seen)
    corpus_path = files.join(path, "corpus.jsonl")
    if files.exists(corpus_path):  # read (and checksummed) even when no passage is relevant
        found = set()
        for entry_id, text in _jsonl_texts(corpus_path, name, records, only=relevant):
            found.add(entry_id)
            yield f"corpus:{entry_id}", text, "passages"
        relevant -= found
    counts["passages_missing"] = len(relevant)


def _read_qrels(path: str, name: str, records: list, queries: set, relevant: set) -> None:
    with _Reader(path, name, records) as reader:
        for number, line in reader.lines():
            fields = line.split("\t")
            if len(fields) not in (3, 4):
                raise EvalSetError(f"{path}: line {number}: expected query-id<TAB>corpus-id<TAB>score")
            query_id, doc_id, score = fields[0], fields[-2], fields[-1]
            try:
                relevance = int(score.strip())
            except ValueError:
                if number == 1:  # the header line
                    continue
                raise EvalSetError(f"{path}: line {number}: the score {score!r} is not an integer") from None
            queries.add(query_id.strip())
            if relevance > 0:
                relevant.add(doc_id.strip())


def _jsonl_texts(path: str, name: str, records: list, only: set | None = None) -> Iterator[tuple[str, str]]:
    """``(id, text)`` of a JSON-lines file; with ``only``, of the lines whose ``_id`` is in it."""
    with _Reader(path, name, records) as reader:
        batch = []
        for number, raw in reader.raw_lines():
            if only is not None:
                quick = _LEADING_ID.match(raw)
                if quick and b"\\" not in quick.group(1) and quick.group(1).decode("utf-8", "replace") not in only:
                    continue
            if raw.strip():
                batch.append((number, raw))
            if len(batch) == _JSON_BATCH:
                yield from _json_records(reader, batch, only)
                batch = []
        yield from _json_records(reader, batch, only)


def _json_records(reader: _Reader, batch: list, only: set | None) -> Iterator[tuple[str, str]]:
    """``(id, text)`` of numbered JSON lines: parsed by Arrow at once, or line by line where
    Arrow refuses them (for the error of the first bad line, or ids written as numbers)."""
    try:
        table = pa_json.read_json(io.BytesIO(b"\n".join(raw for _number, raw in batch)),
                                  parse_options=_JSON_OPTIONS) if batch else None
    except (pa.ArrowInvalid, UnicodeDecodeError):
        table = None
    if table is not None and table.num_rows == len(batch) and not table["text"].null_count:
        ids = pc.coalesce(table["_id"], table["id"]).to_pylist()
        parsed = zip(ids, table["text"].to_pylist())
    else:
        parsed = (_json_record(reader, number, raw) for number, raw in batch)
    for (number, _raw), (entry_id, text) in zip(batch, parsed):
        entry_id = f"line {number}" if entry_id is None else entry_id
        if only is None or entry_id in only:
            yield entry_id, text


def _json_record(reader: _Reader, number: int, raw: bytes) -> tuple[str | None, str]:
    try:
        record = json.loads(reader.decode(raw, number))
    except ValueError as exc:
        raise EvalSetError(f"{reader.path}: line {number}: not JSON ({exc.msg})") from None
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        raise EvalSetError(f"{reader.path}: line {number}: expected an object with a string \"text\"")
    entry_id = record.get("_id", record.get("id"))
    return (None if entry_id is None else str(entry_id)), record["text"]


def _tsv_texts(path: str, name: str, records: list) -> Iterator[tuple[str, str]]:
    with _Reader(path, name, records) as reader:
        for number, line in reader.lines():
            entry_id, tab, text = line.partition("\t")
            if not tab:
                entry_id, text = f"line {number}", line
            elif number == 1 and entry_id.strip().lower() in _HEADER_IDS:
                continue
            if text.strip():
                yield entry_id, text


class _Reader:
    """One file read once: its lines (gzip undone), its size and SHA-256, recorded in
    ``records`` when the file has been read to its end."""

    def __init__(self, path: str, evalset: str, records: list):
        self.path, self.evalset, self.records = path, evalset, records

    def __enter__(self):
        try:
            self._raw = files.open_raw(self.path)
        except OSError as exc:  # a missing or unreadable file, on any filesystem (BeamIOError too)
            raise EvalSetError(f"{self.path}: cannot be read ({type(exc).__name__}: {exc})".splitlines()[0]) from None
        self._digest, self._size = hashlib.sha256(), 0
        self._inflate = None
        return self

    def __exit__(self, kind, value, traceback):
        self._raw.close()
        if kind is None:
            self.records.append({"evalset": self.evalset, "path": self.path, "bytes": self._size,
                                 "sha256": self._digest.hexdigest()})

    def _chunks(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._raw.read(files.READ_BUFFER)
            except OSError as exc:
                raise EvalSetError(f"{self.path}: read failed ({type(exc).__name__}: {exc})".splitlines()[0]) from None
            if not chunk:
                break
            self._digest.update(chunk)
            self._size += len(chunk)
            if self._size == len(chunk) and chunk[:2] == b"\x1f\x8b":
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            if self._inflate is None:
                yield chunk
                continue
            try:
                yield self._inflate.decompress(chunk)
                while self._inflate.eof and self._inflate.unused_data:  # concatenated gzip members
                    rest = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    yield self._inflate.decompress(rest)
            except zlib.error as exc:
                raise EvalSetError(f"{self.path}: damaged gzip data ({exc})") from None
        if self._inflate is not None and not self._inflate.eof:
            raise EvalSetError(f"{self.path}: the gzip data ends early")

    def drain(self) -> None:
        for _chunk in self._chunks():
            pass

    def raw_lines(self) -> Iterator[tuple[int, bytes]]:
        """Numbered lines as bytes, without their line break."""
        number, rest = 0, b""
        for chunk in self._chunks():
            pieces = (rest + chunk).split(b"\n")
            rest = pieces.pop()
            for piece in pieces:
                number += 1
                yield number, piece.removesuffix(b"\r")
        if rest:
            yield number + 1, rest.removesuffix(b"\r")

    def decode(self, raw: bytes, number: int) -> str:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EvalSetError(f"{self.path}: line {number}: not UTF-8") from None
        return text.removeprefix("\ufeff") if number == 1 else text

    def lines(self) -> Iterator[tuple[int, str]]:
        for number, raw in self.raw_lines():
            line = self.decode(raw, number)
            if line.strip():
                yield number, line

