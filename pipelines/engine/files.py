"""File access for every source: local paths or any filesystem Beam knows (gs://, s3://).

* :func:`list_files` and :func:`exists` go through Beam's ``FileSystems``.
* :func:`open_input` opens a file for streaming and undoes its compression, detected
  from the first bytes, never from the name (upstream mirrors ship plain JSON named
  ``.json.gz`` and folders named ``.tar.gz``).
* :func:`iter_archive_members` streams the members of a 7z, tar or zip archive with
  libarchive, one at a time, without extracting anything to disk. Member names that
  would escape the archive's folder are refused, and so are members whose declared or
  actual uncompressed size is absurd (an "archive bomb", see :class:`ArchiveLimits`).
"""
from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import posixpath
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.engine import options, progress

READ_BUFFER = 1 << 20

try:
    from isal.igzip import IGzipFile as _FastGzipFile
except ImportError:  # a platform without isal's wheels: the standard library alone, slower
    _FastGzipFile = None


class GzipReader(io.RawIOBase):
    """A gzip stream (one member or several) inflated as the standard library's ``gzip``
    inflates it: the same bytes, up to the same point of a damaged file, then the same error.

    The bytes come from ISA-L's inflate (python-isal's ``igzip``, 4-5x zlib: 0.33 s against
    1.2-1.7 s for a 510 MB WikiAnswers part; a compressed file is read through by one
    worker, so its decompression is time no other worker shares). On a damaged file
    ``igzip`` stops short of what precedes the damage (it decodes in larger steps: of a
    2.9 MB file cut in half it gives 1.0 MB where ``gzip`` gives 1.4 MB, and of a file
    followed by stray bytes 2.1 of its 2.9 MB): there, the file is read again from its
    start with ``gzip``, which goes on from the same byte to where it fails itself.

    Args:
        raw: the compressed stream, at its start; seekable for the recovery (otherwise
            ``igzip``'s error is raised where it stopped).
    """

    def __init__(self, raw: BinaryIO):
        super().__init__()
        self._raw = raw
        self._delivered = 0
        self._fast = _FastGzipFile(fileobj=raw, mode="rb") if _FastGzipFile is not None else None
        self._slow = None if self._fast is not None else gzip.GzipFile(fileobj=raw, mode="rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._slow is None:
            try:
                data = self._fast.read1(len(buffer))
            except Exception:
                if not self._recovered():
                    raise
            else:
                self._delivered += len(data)
                buffer[:len(data)] = data
                return len(data)
        data = self._slow.read1(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _recovered(self) -> bool:
        """Go on with ``gzip`` from the byte ``igzip`` stopped at; ``False`` when the stream
        cannot go back to its start."""
        try:
            self._raw.seek(0)
        except (AttributeError, OSError, ValueError):
            return False
        self._slow = gzip.GzipFile(fileobj=self._raw, mode="rb")
        to_skip = self._delivered
        while to_skip:
            skipped = len(self._slow.read1(min(to_skip, READ_BUFFER)))
            if not skipped:  # unreachable: igzip's bytes are a prefix of gzip's
                raise EOFError("the gzip stream ended before the bytes already read")
            to_skip -= skipped
        return True

    def close(self) -> None:
        for reader in (self._fast, self._slow):
            if reader is not None:
                reader.close()
        super().close()


# Magic numbers of the single-stream compressions we undo transparently.
_GZIP = b"\x1f\x8b"
_BZIP2 = b"BZh"
_XZ = b"\xfd7zXZ\x00"
_ZSTD = b"\x28\xb5\x2f\xfd"
# Magic numbers of multi-member archives (read with iter_archive_members).
_SEVEN_ZIP = b"7z\xbc\xaf\x27\x1c"
_ZIP = b"PK\x03\x04"


class BadInputFile(Exception):
    """An input file that cannot be read; the message names the file and the problem."""


def join(base: str, *parts: str) -> str:
    """Join path parts for local paths and URLs alike."""
    if "://" in base:
        return posixpath.join(base.rstrip("/"), *parts)
    return FileSystems.join(base, *parts) if parts else base


def relative_to(path: str, root: str) -> str:
    """``path`` relative to ``root`` (for provenance); the path itself when outside it."""
    root = root.rstrip("/") + "/"
    return path[len(root):] if path.startswith(root) else path


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def list_files(pattern: str) -> list[tuple[str, int]]:
    """Files matching a glob, as sorted ``(path, size_in_bytes)`` pairs."""
    result = FileSystems.match([pattern])[0]
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list)


def has_files(folder: str) -> bool:
    """Whether ``folder`` holds at least one file (without listing all of them)."""
    result = FileSystems.match([join(folder, "**")], limits=[1])[0]
    return bool(result.metadata_list)


def list_dir(folder: str) -> list[tuple[str, int]]:
    """Every file below ``folder`` (recursively), sorted."""
    files = list_files(join(folder, "**"))
    return [(p, s) for p, s in files if not posixpath.basename(p).startswith(".")]


def open_raw(path: str) -> BinaryIO:
    """Open ``path`` for binary reading, as stored (no decompression)."""
    try:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as exc:  # the filesystem's own error type varies by scheme
        raise BadInputFile(f"{path}: cannot open ({exc})") from exc


def sniff_compression(head: bytes) -> str | None:
    """Name of the compression whose magic number starts ``head``, or ``None``."""
    for name, magic in (("gzip", _GZIP), ("bzip2", _BZIP2), ("xz", _XZ), ("zstd", _ZSTD),
                        ("7z", _SEVEN_ZIP), ("zip", _ZIP)):
        if head.startswith(magic):
            return name
    if len(head) > 262 and head[257:262] == b"ustar":
        return "tar"
    return None


def _decompressing(raw: BinaryIO, kind: str | None, path: str) -> BinaryIO:
    if kind is None:
        return raw
    if kind == "gzip":
        return GzipReader(raw)
    if kind == "bzip2":
        return bz2.BZ2File(raw, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(raw, mode="rb")
    if kind == "zstd":
        try:
            import zstandard
        except ImportError as exc:
            raise BadInputFile(f"{path}: zstd-compressed; install 'zstandard' to read it") from exc
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    raise BadInputFile(f"{path}: is a {kind} archive, expected a single (possibly compressed) file")


def archive_format(path: str) -> str | None:
    """``"7z"``, ``"zip"`` or ``"tar"`` (plain or gzip/bzip2/xz-compressed) when ``path`` is a
    multi-member archive, judged from its bytes; ``None`` for a single file."""
    with open_raw(path) as raw:
        head = raw.read(512)
        kind = sniff_compression(head)
        if kind in ("7z", "zip", "tar"):
            return kind
        if kind in ("gzip", "bzip2", "xz"):
            raw.seek(0)
            try:
                inner = _decompressing(raw, kind, path).read(512)
            except (OSError, EOFError, lzma.LZMAError):
                return None
            return "tar" if sniff_compression(inner) == "tar" else None
    return None


def is_local(path: str) -> bool:
    """Whether ``path`` is on a local disk (no ``scheme://``)."""
    return "://" not in path


def run_compression(path: str) -> str | None:
    """Codec of temporary Arrow runs written at ``path``: none on a local disk (writing is
    3-4x faster than with LZ4, measured on MS MARCO rows, and local disk is cheap), LZ4 on
    object stores (``gs://``, ``s3://``), where bytes cost transfer time."""
    return None if is_local(path) else "lz4"


def size_of(path: str) -> int:
    """Size of one file in bytes."""
    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def is_plain(path: str) -> bool:
    """Whether ``path`` is stored uncompressed and is not an archive (from its first bytes)."""
    with open_raw(path) as raw:
        return sniff_compression(raw.read(512)) is None


@contextlib.contextmanager
def open_input(path: str) -> Iterator[BinaryIO]:
    """Open ``path`` as a buffered binary stream with its compression undone.

    gzip, bzip2, xz and zstd are recognised by their first bytes; anything else is read
    as it is. Raises :class:`BadInputFile` naming the file when it cannot be opened.
    """
    raw = open_raw(path)
    try:
        with progress.reading_file(path, raw):
            buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, READ_BUFFER)
            head = buffered.peek(512)[:512]
            stream = _decompressing(buffered, sniff_compression(head), path)
            yield io.BufferedReader(stream, READ_BUFFER) if stream is not buffered else stream
    finally:
        raw.close()


class _BlockReader(io.RawIOBase):
    """A read-only file object over an iterator of byte blocks."""

    def __init__(self, blocks: Iterator[bytes]):
        self._blocks = iter(blocks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = memoryview(block)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def safe_member_name(name: str) -> bool:
    """False for archive member names that would escape the archive's folder."""
    if not name or name.startswith(("/", "\\")) or ":" in name.split("/")[0]:
        return False
    parts = name.replace("\\", "/").split("/")
    return ".." not in parts


@dataclass(frozen=True)
class ArchiveLimits:
    """How large an archive member may be before it is refused as an archive bomb.

    Attributes:
        max_member_bytes: cap on a member's uncompressed size, declared or actual. The
            default (1 TiB) is ten times the largest real member (StackOverflow's
            ``Posts.xml``, about 100 GB). Flag: ``--max_member_bytes``.
        max_ratio: cap on uncompressed bytes per compressed byte. Real dumps compress
            5-20x; deflate cannot pass about 1,030x, so 1,000x is only reached by
            crafted data. The compressed side is counted with one read buffer
            (:data:`READ_BUFFER`) of slack, so members below ``max_ratio`` MiB are never
            refused for their ratio. Flag: ``--max_compression_ratio``.
    """

    max_member_bytes: int = 1 << 40
    max_ratio: float = 1000.0

    @classmethod
    def of_run(cls) -> "ArchiveLimits":
        """The run's limits (``--max_member_bytes``, ``--max_compression_ratio``)."""
        settings = options.current()
        return cls(max_member_bytes=settings.max_member_bytes, max_ratio=settings.max_compression_ratio)

    def declared_problem(self, declared: int | None, archive_bytes: int | None) -> str | None:
        """Why a member's declared size (from its header, before anything is inflated)
        is refused, or ``None``. Unknown sizes (``None``, 0) are checked while reading."""
        if not declared:
            return None
        if declared > self.max_member_bytes:
            return f"declares {declared} bytes, above the cap of {self.max_member_bytes}"
        if archive_bytes and declared > self.max_ratio * (archive_bytes + READ_BUFFER):
            return (f"declares {declared} bytes from an archive of {archive_bytes} bytes, "
                    f"more than {self.max_ratio:g} times its compressed size")
        return None

    def actual_problem(self, produced: int, compressed: int) -> str | None:
        """Why a member that has inflated to ``produced`` bytes from ``compressed`` bytes
        of the archive is refused, or ``None``."""
        if produced > self.max_member_bytes:
            return f"inflates beyond the cap of {self.max_member_bytes} bytes"
        if produced > self.max_ratio * (compressed + READ_BUFFER):
            return (f"inflates to {produced} bytes from about {compressed} compressed bytes, "
                    f"more than {self.max_ratio:g} times")
        return None


def _guarded_blocks(blocks: Iterator[bytes], path: str, name: str, limits: ArchiveLimits,
                    compressed: Callable[[], int]) -> Iterator[bytes]:
    """Pass on a member's blocks, refusing it once :meth:`ArchiveLimits.actual_problem`
    finds one.

    Args:
        blocks: the member's uncompressed blocks.
        path: the archive, for the message.
        name: the member, for the message.
        limits: the caps.
        compressed: the compressed bytes the member may stand for so far.
    Raises:
        BadInputFile: naming the archive and the member.
    """
    produced = 0
    for block in blocks:
        produced += len(block)
        problem = limits.actual_problem(produced, compressed())
        if problem:
            raise BadInputFile(f"{path}: member {name!r} refused as an archive bomb: {problem}")
        yield block


def _compressed_budget(archive, archive_bytes: int | None) -> Callable[[], int]:
    """The compressed bytes a member is measured against: the whole archive when its size
    is known (7z seeks to its header at the end, so libarchive's byte counter does not grow
    with the member), otherwise the archive bytes consumed since the member began."""
    if archive_bytes:
        return lambda: archive_bytes
    start = archive.bytes_read
    return lambda: max(0, archive.bytes_read - start)


def _stream_size(raw) -> int | None:
    """Size in bytes of a seekable stream (left at its start), or ``None``."""
    try:
        size = raw.seek(0, io.SEEK_END)
        raw.seek(0)
        return size
    except (OSError, AttributeError, ValueError):
        return None


@contextlib.contextmanager
def _archive_stream(path: str):
    """libarchive's reader over ``path``, with the archive's size in bytes (``None`` when
    the filesystem cannot tell), as ``(archive, size)``."""
    import libarchive  # imported here: workers that never read archives do not need it

    raw = open_raw(path)
    try:
        size = _stream_size(raw)
        with progress.reading_file(path, raw), libarchive.stream_reader(raw, block_size=READ_BUFFER) as archive:
            yield archive, size
    finally:
        raw.close()


def iter_archive_members(path: str, wanted=None,
                         limits: ArchiveLimits | None = None) -> Iterator[tuple[str, BinaryIO]]:
    """Stream the regular files of an archive (7z, tar[.gz|.bz2|.xz], zip).

    Args:
        path: the archive, local or remote.
        wanted: optional predicate on the member name; other members are skipped
            without being decompressed where the format allows.
        limits: the archive-bomb caps; :meth:`ArchiveLimits.of_run` when ``None``.
    Yields:
        ``(member_name, stream)``; each stream is valid only until the next member is
        requested. Members whose names would escape the archive raise
        :class:`BadInputFile`, and so do members whose declared size is refused by
        ``limits`` (before anything is inflated) or whose stream inflates beyond them
        (raised by the stream's ``read``).
    Raises:
        BadInputFile: the archive cannot be read, or a member is refused (the message
            names the archive and the member).
    """
    import libarchive.exception

    limits = limits or ArchiveLimits.of_run()
    try:
        with _archive_stream(path) as (archive, archive_bytes):
            for entry in archive:
                if not entry.isfile:
                    continue
                name = entry.pathname
                if not safe_member_name(name):
                    raise BadInputFile(f"{path}: member {name!r} would escape the archive folder")
                if wanted is not None and not wanted(name):
                    continue
                problem = limits.declared_problem(entry.size, archive_bytes)
                if problem:
                    raise BadInputFile(f"{path}: member {name!r} refused as an archive bomb: {problem}")
                blocks = _guarded_blocks(entry.get_blocks(), path, name, limits,
                                         _compressed_budget(archive, archive_bytes))
                yield name, io.BufferedReader(_BlockReader(blocks), READ_BUFFER)
    except libarchive.exception.ArchiveError as exc:
        raise BadInputFile(f"{path}: unreadable archive ({exc})") from exc
