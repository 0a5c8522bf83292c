"""gzip inputs inflated with ISA-L give what the standard library's gzip gives, damaged or not."""
import gzip
import io
import random

import pytest

from pipelines.engine import files


def _text(lines: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta"]
    return b"".join(b" ".join(rng.choice(words) for _ in range(12)) + b"\n" for _ in range(lines))


_TEXT = _text(40_000)  # 2.9 MB: several of igzip's decoding steps
_GZ = gzip.compress(_TEXT)
DAMAGED = {
    "intact": _GZ,
    "two members": _GZ + gzip.compress(b"more\n"),
    "cut in half": _GZ[:len(_GZ) // 2],
    "followed by stray bytes": _GZ + b"stray bytes" * 10,
    "bad checksum": _GZ[:-8] + bytes(4) + _GZ[-4:],
    "corrupt in the middle": _GZ[:len(_GZ) // 2] + bytes(64) + _GZ[len(_GZ) // 2 + 64:],
    "empty member": gzip.compress(b""),
}


def _read_through(stream) -> tuple[bytes, str | None]:
    """Every byte ``stream`` gives, and the error that ended it (type and message)."""
    out = bytearray()
    try:
        while True:
            piece = stream.read1(1 << 20)
            if not piece:
                return bytes(out), None
            out += piece
    except Exception as exc:
        return bytes(out), type(exc).__name__ if "Error -3" in str(exc) else f"{type(exc).__name__}: {exc}"


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_gzip_gives_the_standard_librarys_bytes_and_error(case):
    blob = DAMAGED[case]
    expected = _read_through(gzip.GzipFile(fileobj=io.BytesIO(blob), mode="rb"))
    got = _read_through(io.BufferedReader(files.GzipReader(io.BytesIO(blob)), files.READ_BUFFER))
    assert got[1] == expected[1]
    assert len(got[0]) == len(expected[0]) and got[0] == expected[0]


def test_a_damaged_file_keeps_what_precedes_the_damage_through_open_input(tmp_path):
    path = tmp_path / "part-00000.gz"
    path.write_bytes(DAMAGED["cut in half"])
    expected, _ = _read_through(gzip.GzipFile(fileobj=io.BytesIO(DAMAGED["cut in half"]), mode="rb"))
    with files.open_input(str(path)) as stream:
        got, error = _read_through(stream)
    assert got == expected and len(got) > 1 << 20
    assert error == "EOFError: Compressed file ended before the end-of-stream marker was reached"


class _Unseekable(io.RawIOBase):
    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)

    def seek(self, *args):
        raise OSError("not seekable")


def test_a_stream_that_cannot_go_back_ends_where_the_fast_inflate_stopped():
    got, error = _read_through(io.BufferedReader(files.GzipReader(_Unseekable(DAMAGED["cut in half"]))))
    assert error.startswith("EOFError") and _TEXT.startswith(got)
