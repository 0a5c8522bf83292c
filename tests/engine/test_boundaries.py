"""Boundaries where a line or a row could be lost or read twice: byte ranges cut anywhere in
a file (CRLF endings, blank lines, a line exactly at the cut, a last line without a line
end, a file that reads in short pieces), TSV tables read through ranges, blocks, and join
runs read back by hash range with hashes exactly on the tasks' bounds.

Every cut position of small files is tried, rather than sampled: a lost line at one
boundary is what these tests look for.
"""
import io

import numpy as np
import pyarrow as pa
import pytest

from pipelines.engine.formats import tsv_tables
from pipelines.engine.join import (
    HASH,
    SpillByHash,
    hash_range,
    plan_tasks,
    read_range,
    write_run,
)
from pipelines.engine.lines import (
    LineRange,
    byte_ranges,
    file_blocks,
    line_blocks,
    range_lines,
    text_lines,
)

# Lines of every kind a cut can fall in: CRLF, lone CR, blank, empty, long, unterminated.
FILES = {
    "lf": b"1\ta\tx\n22\tbb\ty\n333\tccc\tz\n",
    "crlf": b"1\ta\tx\r\n22\tbb\ty\r\n333\tccc\tz\r\n",
    "mixed endings, no final line end": b"1\ta\tx\r\n22\tbb\ty\n\n333\tccc\tz\r\n4\td\tw",
    "blank and empty lines": b"\n\n1\ta\tx\n \n\n22\tbb\ty\n\n",
    "one long line among short": b"1\ta\tx\n" + b"5\t" + b"e" * 40 + b"\tv\n" + b"6\tf\tu\n",
    "lone carriage returns": b"1\ta\r\tx\n22\tbb\ty\r\r\n",
}


class ShortReads(io.RawIOBase):
    """A seekable file whose reads return at most ``piece`` bytes, as a network stream may."""

    def __init__(self, data: bytes, piece: int):
        self._data = io.BytesIO(data)
        self._piece = piece

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        return self._data.seek(offset, whence)

    def tell(self):
        return self._data.tell()

    def readinto(self, buffer):
        data = self._data.read(min(len(buffer), self._piece))
        buffer[:len(data)] = data
        return len(data)


def _ranges(data: bytes, split_bytes: int, raw=io.BytesIO, buffer_size: int = 16):
    return [io.BufferedReader(LineRange(raw(data), start, end), buffer_size)
            for start, end in byte_ranges(len(data), split_bytes)]


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("raw", [io.BytesIO, lambda data: ShortReads(data, 3)], ids=["whole reads", "short reads"])
def test_ranges_cut_anywhere_hold_every_line_once(name, raw):
    data = FILES[name]
    for split_bytes in range(1, len(data) + 2):
        parts = [b"".join(iter(lambda s=stream: s.read(5), b"")) for stream in _ranges(data, split_bytes, raw)]
        assert b"".join(parts) == data, split_bytes
        # A range is whole lines: it ends with a line end unless it holds the file's end.
        ends = np.cumsum([len(p) for p in parts])
        assert all(p.endswith(b"\n") for p, end in zip(parts, ends) if p and end < len(data)), split_bytes
        lines = [line for stream in _ranges(data, split_bytes, raw) for _offset, line in range_lines(stream)]
        assert b"".join(lines) == data and len(lines) == len(data.split(b"\n")) - (data.endswith(b"\n")), split_bytes


@pytest.mark.parametrize("name", FILES)
def test_a_line_exactly_at_a_cut_belongs_to_the_range_it_begins_in(name):
    data = FILES[name]
    starts = [0] + [i + 1 for i, byte in enumerate(data[:-1]) if byte == ord("\n")]
    for start in starts:
        for end in range(start + 1, len(data) + 1):
            stream = io.BufferedReader(LineRange(io.BytesIO(data), start, end))
            # From the line beginning at start to the end of the line holding byte end - 1.
            last = data.find(b"\n", end - 1)
            assert stream.read() == data[start:last + 1 if last >= 0 else len(data)], (start, end)


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("tsv_block_bytes", [1, 7, 1 << 20])
def test_tsv_tables_of_ranges_are_the_tables_of_the_file(name, tsv_block_bytes):
    data = FILES[name]
    names, ids = ("qid", "pos", "neg"), ()

    def rows(stream):
        return [row for item in tsv_tables(stream, "d", "f", names, ids, block_bytes=tsv_block_bytes)
                if isinstance(item, pa.Table) for row in item.to_pylist()]

    expected = rows(io.BufferedReader(io.BytesIO(data)))
    for split_bytes in range(1, len(data) + 2):
        got = [row for stream in _ranges(data, split_bytes) for row in rows(stream)]
        assert got == expected, split_bytes


def test_tsv_ids_of_ranges_count_every_line_once():
    """The shape of the MS MARCO triples file: every line of a file cut at every size is one
    row, whatever the TSV block size."""
    rng = np.random.default_rng(7)
    data = b"".join(b"%d\t%d\t%d\n" % tuple(rng.integers(0, 10 ** rng.integers(1, 7), 3)) for _ in range(60))
    for split_bytes in list(range(1, 64)) + [len(data) // 3, len(data)]:
        for tsv_block_bytes in (5, 64, 1 << 20):
            tables = [t for stream in _ranges(data, split_bytes)
                      for t in tsv_tables(stream, "d", "f", ("qid", "pos", "neg"), ("qid", "pos", "neg"),
                                          block_bytes=tsv_block_bytes)]
            got = b"".join(b"%d\t%d\t%d\n" % tuple(row.values()) for t in tables for row in t.to_pylist())
            assert got == data, (split_bytes, tsv_block_bytes)


@pytest.mark.parametrize("name", FILES)
def test_blocks_cut_anywhere_hold_every_line_once_numbered_as_in_the_file(name):
    data = FILES[name]
    expected = [(number, raw) for number, _text, raw in text_lines(io.BytesIO(data))]
    for block_bytes in range(1, len(data) + 2):
        blocks = list(file_blocks(io.BufferedReader(io.BytesIO(data), 4), block_bytes))
        assert b"".join(block for _i, _first, block, _whole in blocks) == data
        assert [index for index, *_rest in blocks] == list(range(len(blocks)))
        got = [(number, raw) for _i, first, block, _whole in blocks
               for number, _text, raw in text_lines(io.BytesIO(block), first)]
        assert got == expected, block_bytes
        assert blocks[-1][3] == (len(blocks) == 1)


def test_line_blocks_of_short_reads_are_the_blocks_of_whole_reads():
    data = FILES["mixed endings, no final line end"] * 5
    for block_bytes in range(1, 40):
        whole = list(line_blocks(io.BufferedReader(io.BytesIO(data)), block_bytes))
        short = list(line_blocks(io.BufferedReader(ShortReads(data, 3), 4), block_bytes))
        assert short == whole, block_bytes


SCHEMA = pa.schema([("id", pa.int64())])


def test_join_runs_read_by_hash_range_give_every_row_once_with_hashes_on_the_bounds(tmp_path):
    """Rows whose hash is exactly a task's low or high bound, or the space's ends, are read by
    exactly one task, whatever the number of tasks and the batches' sizes."""
    tasks_tried = range(1, 12)
    bounds = {h for count in tasks_tried for j in range(count) for h in hash_range(j, count)}
    hashes = sorted({h % (1 << 64) for b in bounds for h in (b - 1, b, b + 1)} | {0, (1 << 64) - 1})
    table = pa.table({"id": pa.array(range(len(hashes)), pa.int64()),
                      HASH: pa.array(hashes, pa.uint64())})
    for batch_rows in (1, 2, 3, 7, len(hashes)):
        slices = [(offset, min(batch_rows, len(hashes) - offset)) for offset in range(0, len(hashes), batch_rows)]
        path, batches = write_run(str(tmp_path), table, HASH, slices)
        run = {"path": path, "batches": [[first, last, chunk.num_rows, chunk.nbytes]
                                         for first, last, chunk in batches]}
        for count in tasks_tried:
            tasks = plan_tasks({"side": [run]}, task_bytes=1 << 40, min_tasks=count)
            assert len(tasks) == count
            ids = [i for t in tasks
                   for i in read_range(t["reads"]["side"], SCHEMA, t["low"], t["high"])["id"].to_pylist()]
            assert sorted(ids) == list(range(len(hashes))), (batch_rows, count)


def test_a_retried_spill_writes_new_runs_and_leaves_the_first_attempts_alone(tmp_path):
    """A bundle run twice (a retry, or two workers given the same input) spills runs under
    new names: neither attempt overwrites or removes the other's files."""
    table = pa.table({"id": pa.array(range(1000), pa.int64())})

    def attempt():
        spill = SpillByHash(str(tmp_path), "id", SCHEMA, spill_bytes=4000, row_group_bytes=512)
        spill.start_bundle()
        runs = list(spill.process(table)) + [w.value for w in spill.finish_bundle()]
        return runs

    first, second = attempt(), attempt()
    assert len(first) > 1
    assert not {r["path"] for r in first} & {r["path"] for r in second}
    for runs in (first, second):
        tasks = plan_tasks({"side": runs}, task_bytes=1 << 40, min_tasks=5)
        ids = [i for t in tasks for i in read_range(t["reads"]["side"], SCHEMA, t["low"], t["high"])["id"].to_pylist()]
        assert sorted(ids) == list(range(1000))


def test_a_run_batch_whose_columns_have_several_chunks_is_one_batch_of_the_file(tmp_path):
    """Readers find a run's batches by their index in its description: a described batch
    must be one record batch of the file even when its columns come in several chunks."""
    import pyarrow as pa

    from pipelines.engine.join import read_runs, write_run

    table = pa.concat_tables([pa.table({"h": pa.array([1, 2, 3], pa.uint64()), "v": ["a", "b", "c"]}),
                              pa.table({"h": pa.array([4, 5, 6], pa.uint64()), "v": ["d", "e", "f"]})])
    assert table["h"].num_chunks == 2
    path, batches = write_run(str(tmp_path), table, "h", [(0, 4), (4, 2)])  # the first crosses the chunks
    assert [chunk.num_rows for _first, _last, chunk in batches] == [4, 2]
    reads = [(path, index, True) for index in range(len(batches))]
    assert [t.num_rows for t in read_runs(reads, "h", 0, None)] == [4, 2]
    assert pa.ipc.open_file(path).num_record_batches == 2
