"""Reading upstream files: one ``read_file`` generator per source, run file by file.

A source describes how to read *one* file as a generator::

    def read_file(stream, source_file):
        for line_number, text, raw in text_lines(stream):
            ...
            yield element                       # goes to the main output
            yield rejected(DATASET, "bad_json", source_file=source_file, ...)   # a reject

and :class:`ReadFiles` runs it over a list of files in parallel (one file is one
worker's job). The file is opened with its compression undone (sniffed from the bytes).
When a file cannot be read to its end, the rows before the problem are kept and the file
itself becomes a reject (reason ``unreadable_file``, with the position where reading
stopped); with ``strict`` the run stops instead, naming the file.
"""
from __future__ import annotations

import io
import json
from typing import BinaryIO, Callable, Iterator

import apache_beam as beam

from pipelines.core import files
from pipelines.core.rejects import REJECTED, rejected


def text_lines(stream: BinaryIO) -> Iterator[tuple[int, str | None, bytes]]:
    """Lines of a UTF-8 text file, without their line ending.

    Yields:
        ``(line_number, text, raw)`` with 1-based line numbers; ``text`` is ``None`` when
        the line is not valid UTF-8 (``raw`` keeps the bytes for the dead-letter output).
        A UTF-8 BOM on the first line is dropped.
    """
    for number, raw in enumerate(stream, start=1):
        raw = raw.rstrip(b"\r\n")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            yield number, raw.decode("utf-8"), raw
        except UnicodeDecodeError:
            yield number, None, raw


def json_lines(stream: BinaryIO, dataset: str, source_file: str) -> Iterator:
    """Parsed JSON objects of a JSON-lines file; bad lines become rejects.

    Yields ``(line_number, object)`` tuples, or tagged rejects (``bad_encoding``,
    ``bad_json``, ``not_an_object``) for ``dataset``. Blank lines are skipped.
    """
    for number, text, raw in text_lines(stream):
        if text is None:
            yield rejected(dataset, "bad_encoding", source_file=source_file,
                           record_id=f"line {number}", detail="line is not valid UTF-8", excerpt=raw)
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            yield rejected(dataset, "bad_json", source_file=source_file, record_id=f"line {number}",
                           detail=f"not valid JSON: {exc}", excerpt=text)
            continue
        if not isinstance(value, dict):
            yield rejected(dataset, "not_an_object", source_file=source_file,
                           record_id=f"line {number}", detail="line is JSON but not an object",
                           excerpt=text)
            continue
        yield number, value


class _ReadOneFile(beam.DoFn):
    def __init__(self, read_file, input_root: str, dataset: str, strict: bool, decompress: bool):
        self.read_file = read_file
        self.input_root = input_root
        self.dataset = dataset
        self.strict = strict
        self.decompress = decompress

    def process(self, path):
        relative = files.relative_to(path, self.input_root)
        try:
            opener = files.open_input(path) if self.decompress else files.open_raw(path)
            with opener as stream:
                yield from self.read_file(stream, relative)
        except Exception as exc:  # any reader failure fails this file only (unless strict)
            if self.strict:
                raise files.BadInputFile(f"{relative}: {type(exc).__name__}: {exc}") from exc
            yield rejected(self.dataset, "unreadable_file", source_file=relative,
                           record_id=_position(exc),
                           detail=f"{relative}: reading stopped: {type(exc).__name__}: {exc}")


def _position(exc: Exception) -> str:
    position = getattr(exc, "position", None) or getattr(exc, "lineno", None)
    if isinstance(position, tuple):
        return f"line {position[0]}"
    return f"line {position}" if position else ""


class ReadFiles(beam.PTransform):
    """Run ``read_file`` over every file of ``paths``, one file per element.

    Args:
        paths: files to read (local or any Beam filesystem).
        read_file: generator ``(stream, source_file) -> elements or tagged rejects``;
            ``stream`` is a buffered binary stream, ``source_file`` the path relative to
            the input root (use it for provenance).
        input_root: the run's input root (for relative names).
        dataset: dataset that file-level rejects are counted under.
        strict: raise on an unreadable file instead of recording it.
        decompress: undo gzip/bzip2/xz/zstd (sniffed); ``False`` hands over raw bytes.
    Returns:
        A ``DoOutputsTuple``: the main output and ``REJECTED``.
    """

    def __init__(self, paths: list[str], read_file: Callable, *, input_root: str, dataset: str,
                 strict: bool = False, decompress: bool = True):
        super().__init__()
        self.paths = sorted(paths)
        self.read_file = read_file
        self.input_root = input_root
        self.dataset = dataset
        self.strict = strict
        self.decompress = decompress

    def expand(self, pbegin):
        return (
            pbegin
            | "List" >> beam.Create(self.paths)
            | "Spread" >> beam.Reshuffle()
            | "Read" >> beam.ParDo(_ReadOneFile(self.read_file, self.input_root, self.dataset,
                                                 self.strict, self.decompress))
            .with_outputs(REJECTED, main="records")
        )


def read_json_document(stream: BinaryIO):
    """Parse a whole (single-document) JSON file from a stream; for files of modest size
    such as SQuAD. Raises ``ValueError`` with the position of a syntax error."""
    return json.load(io.TextIOWrapper(stream, encoding="utf-8-sig"))
