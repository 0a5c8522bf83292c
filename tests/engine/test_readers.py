"""The shared readers: compression and archives judged from bytes, line and JSON streaming,
file-level rejects."""
import gzip
import io
import json
import math
import tarfile
import zipfile

import apache_beam as beam
import py7zr
import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from hypothesis import given, settings, strategies as st

from pipelines.engine import files
from pipelines.corpus.rejects import REJECTED
from pipelines.engine import options
from pipelines.engine.read import ReadFiles
from pipelines.engine.formats import json_items, json_lines, parse_json, text_records, unless_blank
from pipelines.engine.lines import stream_is_empty
from pipelines.corpus.rejects import layout_rejects, make_reject


def _tagged(items):
    return [(i.tag, i.value["reason"]) if isinstance(i, beam.pvalue.TaggedOutput) else i for i in items]


def test_text_records_skip_blank_lines_and_reject_bad_bytes():
    data = b"\xef\xbb\xbffirst\r\n\r\nbad \xff byte\nlast"
    assert _tagged(text_records(io.BytesIO(data), "d", "f")) == [
        (1, "first"), (REJECTED, "bad_encoding"), (4, "last")]


def test_json_lines_reject_bad_json_and_non_objects():
    data = b'{"a": 1}\n[1, 2]\nnot json\n'
    assert _tagged(json_lines(io.BytesIO(data), "d", "f")) == [
        (1, {"a": 1}), (REJECTED, "not_an_object"), (REJECTED, "bad_json")]


@given(st.lists(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
                max_size=5))
def test_json_lines_round_trip(records):
    data = "\n".join(json.dumps(r) for r in records).encode()
    assert [v for _, v in json_lines(io.BytesIO(data), "d", "f")] == records


def test_json_items_streams_a_nested_array():
    doc = json.dumps({"version": "x", "data": [{"id": i} for i in range(5)]}).encode()
    assert list(json_items(io.BytesIO(doc), "data.item")) == [{"id": i} for i in range(5)]


def test_json_items_truncated_document_raises_after_the_complete_values():
    doc = json.dumps([{"id": i} for i in range(3)]).encode()[:-12]
    got = []
    with pytest.raises(Exception):
        for value in json_items(io.BytesIO(doc), "item"):
            got.append(value)
    assert got == [{"id": 0}, {"id": 1}]


def test_archive_format_is_judged_from_the_bytes(tmp_path):
    plain = tmp_path / "x.tar.gz"
    plain.write_bytes(b"just text named like an archive")
    assert files.archive_format(str(plain)) is None
    tgz = tmp_path / "data.bin"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("a/b.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    assert files.archive_format(str(tgz)) == "tar"
    zipped = tmp_path / "z.zip"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("m.txt", "x")
    assert files.archive_format(str(zipped)) == "zip"
    seven = tmp_path / "s.7z"
    with py7zr.SevenZipFile(seven, "w") as z:
        z.writestr(b"x", "m.txt")
    assert files.archive_format(str(seven)) == "7z"
    gz = tmp_path / "g.gz"
    gz.write_bytes(gzip.compress(b"line\n"))
    assert files.archive_format(str(gz)) is None


def _read_lines(stream, source_file):
    for item in text_records(stream, "d", source_file):
        yield item if isinstance(item, beam.pvalue.TaggedOutput) else (source_file, item[1])


def test_read_files_reads_members_plain_and_compressed_files_and_records_bad_ones(tmp_path):
    with tarfile.open(tmp_path / "bundle.tgz", "w:gz") as tar:
        for name, data in (("dir/keep.txt", b"from tar\n"), ("dir/skip.bin", b"no")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "plain.txt").write_bytes(b"plain\n")
    (tmp_path / "named.gz").write_bytes(b"not gzip at all\n")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(b"x" * 10000)[:40])
    paths = sorted(str(p) for p in tmp_path.iterdir())
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = p | ReadFiles(paths, _read_lines, input_root=str(tmp_path), dataset="d",
                            members=lambda name: name.endswith(".txt"))
        assert_that(out.records, equal_to([
            ("bundle.tgz!dir/keep.txt", "from tar"), ("plain.txt", "plain"),
            ("named.gz", "not gzip at all")]), label="records")
        reasons = out[REJECTED] | beam.Map(lambda r: (r["source_file"], r["reason"]))
        assert_that(reasons, equal_to([("empty.txt", "empty_file"), ("cut.gz", "unreadable_file")]),
                    label="rejects")


def test_stream_is_empty_consumes_nothing():
    for stream in (io.BytesIO(b"x"), io.BufferedReader(io.BytesIO(b"x"))):
        assert not stream_is_empty(stream)
        assert stream.read() == b"x"
    assert stream_is_empty(io.BytesIO(b"")) and stream_is_empty(io.BufferedReader(io.BytesIO(b"")))


def test_unless_blank_rejects_a_file_of_blank_lines_only():
    def read(data):
        stream = io.BufferedReader(io.BytesIO(data))
        return _tagged(unless_blank(text_records(stream, "d", "f"), stream, "d", "f"))

    assert read(b"\n  \r\n") == [(REJECTED, "blank_file")]
    assert read(b"") == []  # no byte at all: ReadFiles records empty_file
    assert read(b"\nx\n") == [(2, "x")]
    assert read(b"\xff\n") == [(REJECTED, "bad_encoding")]


def test_json_items_skips_a_bom():
    assert list(json_items(io.BytesIO(b"\xef\xbb\xbf[1, 2]"), "item")) == [1, 2]
    assert list(json_items(io.BytesIO(b"[3]"), "item")) == [3]


def test_layout_rejects_are_counted_elements():
    reject = make_reject("d", "missing_file", source_file="src", detail="no file")
    with BeamTestPipeline(runner="FnApiRunner") as p:
        out = layout_rejects(p, "src/Missing", [reject])
        assert_that(out | beam.Map(lambda r: (r["source_file"], r["reason"])),
                    equal_to([("src", "missing_file")]))


# -- archive bombs ---------------------------------------------------------------------

BOMB_BYTES = 24 << 20  # zeros: deflate packs them about 1,000 to 1


def _zip_bomb(path, member="dump/zeros.txt"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(member, "w") as out:
            block = b"0" * (1 << 20)
            for _ in range(BOMB_BYTES >> 20):
                out.write(block)
    return path


def test_archive_limits_refuse_declared_sizes_beyond_cap_or_ratio():
    limits = files.ArchiveLimits(max_member_bytes=1000, max_ratio=10)
    assert limits.declared_problem(None, 10) is None and limits.declared_problem(0, 10) is None
    assert "cap" in limits.declared_problem(1001, 10 << 20)
    roomy = files.ArchiveLimits(max_member_bytes=1 << 40, max_ratio=10)
    assert roomy.declared_problem(10 * (100 + files.READ_BUFFER), 100) is None
    assert "times" in roomy.declared_problem(10 * (100 + files.READ_BUFFER) + 1, 100)


def test_guarded_blocks_refuse_a_member_that_inflates_too_far():
    limits = files.ArchiveLimits(max_member_bytes=1 << 40, max_ratio=2)
    blocks = iter([b"x" * files.READ_BUFFER] * 4)
    guarded = files._guarded_blocks(blocks, "a.zip", "m.txt", limits, lambda: 0)
    assert len(next(guarded)) == files.READ_BUFFER
    next(guarded)
    with pytest.raises(files.BadInputFile, match=r"a\.zip: member 'm\.txt' refused as an archive bomb"):
        next(guarded)
    capped = files._guarded_blocks(iter([b"x" * 10] * 3), "a.zip", "m.txt",
                                   files.ArchiveLimits(max_member_bytes=25), lambda: 0)
    with pytest.raises(files.BadInputFile, match="cap of 25"):
        list(capped)


def test_a_highly_compressed_member_is_refused_naming_archive_and_member(tmp_path):
    bomb = _zip_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < BOMB_BYTES / 100
    with pytest.raises(files.BadInputFile, match=r"bomb\.zip: member 'dump/zeros\.txt' refused"):
        for _name, stream in files.iter_archive_members(
                str(bomb), limits=files.ArchiveLimits(max_ratio=10)):
            stream.read()
    # The default limits let the same member through: 24 MiB is far below 1,000 MiB.
    members = [(name, len(stream.read())) for name, stream in files.iter_archive_members(str(bomb))]
    assert members == [("dump/zeros.txt", BOMB_BYTES)]


def test_read_files_turns_an_archive_bomb_into_an_unreadable_file(tmp_path):
    bomb = _zip_bomb(tmp_path / "bomb.zip")
    # The limit travels with the pipeline's options to the reading steps.
    with BeamTestPipeline(runner="FnApiRunner", options=PipelineOptions(["--max_compression_ratio=10"])) as p:
        out = p | ReadFiles([str(bomb)], _read_lines, input_root=str(tmp_path), dataset="d",
                            members=lambda name: True)
        assert_that(out.records, equal_to([]), label="records")
        details = out[REJECTED] | beam.Map(
            lambda r: (r["reason"], "bomb.zip: member 'dump/zeros.txt' refused" in r["detail"]))
        assert_that(details, equal_to([("unreadable_file", True)]), label="rejects")


def test_a_member_beyond_the_size_cap_is_refused_from_its_tar_header(tmp_path, monkeypatch):
    monkeypatch.setattr(options, "_current", options.ReadSettings(max_member_bytes=1000))
    with tarfile.open(tmp_path / "big.tar", "w") as tar:
        info = tarfile.TarInfo("big.txt")
        info.size = 5000
        tar.addfile(info, io.BytesIO(b"y" * 5000))
    with pytest.raises(files.BadInputFile, match=r"big\.tar: member 'big\.txt'.*cap of 1000"):
        list(files.iter_archive_members(str(tmp_path / "big.tar")))


def test_a_line_beyond_the_limit_stops_the_file_after_the_lines_before_it(tmp_path, monkeypatch):
    from pipelines.engine.lines import LineTooLong, text_lines

    monkeypatch.setattr(options, "_current", options.ReadSettings(max_line_bytes=1000))
    data = b"short\n" + b"x" * 5000 + b"\nafter\n"
    got = []
    with pytest.raises(LineTooLong, match="line 2 is longer than 1,000 bytes"):
        for number, text, _raw in text_lines(io.BytesIO(data)):
            got.append((number, text))
    assert got == [(1, "short")]
    # Exactly at the limit is still a line.
    assert [t for _, t, _ in text_lines(io.BytesIO(b"y" * 999 + b"\n"))] == ["y" * 999]


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.integers(min_value=1, max_value=50))
def test_byte_ranges_give_every_line_exactly_once_with_its_offset(lines, split_bytes):
    from pipelines.engine.lines import LineRange, byte_ranges, range_lines

    data = b"".join(line + b"\n" for line in lines)
    got = [(offset, line) for start, end in byte_ranges(len(data), split_bytes)
           for offset, line in range_lines(io.BufferedReader(LineRange(io.BytesIO(data), start, end)))]
    assert [line for _offset, line in got] == [line + b"\n" for line in lines]
    assert all(data[offset:offset + len(line)] == line for offset, line in got)


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=64))
def test_line_ranges_are_streams_of_whole_lines(lines, split_bytes, read_size):
    """Read as streams (as ReadFiles hands them to readers), the ranges of a file hold
    every line exactly once, whole."""
    from pipelines.engine.lines import LineRange, byte_ranges

    data = b"".join(line + b"\n" for line in lines)
    got = b""
    for start, end in byte_ranges(len(data), split_bytes):
        stream = io.BufferedReader(LineRange(io.BytesIO(data), start, end), 16)
        part = b"".join(iter(lambda: stream.read(read_size), b""))
        assert part == b"" or part.endswith(b"\n")
        got += part
    assert got == data


# -- parse_json is json.loads ----------------------------------------------------------------

def _same_value(a, b) -> bool:
    """Equal values of equal types all the way down (NaN equal to NaN, -0.0 apart from 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_value(a[k], b[k]) for k in a)
    return a == b


def _outcome(parse, text):
    try:
        return "value", parse(text)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc)


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=-(10 ** 30), max_value=10 ** 30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(_JSON_VALUES, st.booleans())
def test_parse_json_gives_what_json_loads_gives_for_any_value(value, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only)
    kind, parsed = _outcome(parse_json, text)
    assert kind == "value" and _same_value(parsed, json.loads(text))


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet='{}[]":,0123456789.eE+-tfnrulNaIiy \\u"\ud800', max_size=40)))
def test_parse_json_accepts_and_refuses_what_json_loads_does(text):
    mine, theirs = _outcome(parse_json, text), _outcome(json.loads, text)
    assert mine[0] == theirs[0]
    assert _same_value(mine[1], theirs[1]) if mine[0] == "value" else mine[1] is theirs[1]


def test_parse_json_keeps_what_orjson_alone_would_change():
    assert parse_json("123456789012345678901234567890") == 123456789012345678901234567890
    assert parse_json('{"a": NaN, "b": 1e400, "c": "\\ud800"}')["c"] == "\ud800"
    assert _outcome(parse_json, "[" * 5000 + "]" * 5000)[0] == _outcome(json.loads, "[" * 5000 + "]" * 5000)[0]


# -- files cut into blocks ----------------------------------------------------------------------

_LINES = st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=40)


@given(_LINES, st.booleans(), st.integers(min_value=1, max_value=80))
def test_line_blocks_hold_every_line_once_numbered_as_in_the_file(lines, final_newline, block_bytes):
    from pipelines.engine.lines import line_blocks

    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    blocks = list(line_blocks(io.BufferedReader(io.BytesIO(data), 8), block_bytes))
    assert b"".join(block for _first, block in blocks) == data
    expected_first = 1
    for index, (first, block) in enumerate(blocks):
        assert first == expected_first
        assert block
        if index < len(blocks) - 1:
            assert block.endswith(b"\n") and len(block) >= block_bytes
        expected_first += block.count(b"\n")


@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=20).map(lambda b: b.replace(b"\n", b""))),
                max_size=40),
       st.integers(min_value=1, max_value=60))
def test_line_blocks_begin_only_where_a_record_may_begin(lines, block_bytes):
    from pipelines.engine.lines import line_blocks

    data = b"".join((b"R" if starts else b"c") + text + b"\n" for starts, text in lines)
    blocks = list(line_blocks(io.BytesIO(data), block_bytes, starts_record=lambda line: line.startswith(b"R")))
    assert b"".join(block for _first, block in blocks) == data
    for index, (_first, block) in enumerate(blocks):
        # A block after the first begins with a record's line, unless the one before it
        # grew to twice the block size waiting for one.
        if index and len(blocks[index - 1][1]) < 2 * block_bytes:
            assert block.startswith(b"R")


class _FailsAfter(io.RawIOBase):
    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        n = self._data.readinto(memoryview(buffer)[:7])
        if n == 0:
            raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        return n


def test_line_blocks_keep_the_whole_lines_read_before_an_error():
    from pipelines.engine.lines import line_blocks

    blocks = []
    with pytest.raises(EOFError):
        for block in line_blocks(io.BufferedReader(_FailsAfter(b"one\ntwo\nthree\nfou"), 4), 1 << 20):
            blocks.append(block)
    assert blocks == [(1, b"one\ntwo\nthree\n")]


def test_line_blocks_refuse_a_line_beyond_the_limit_after_the_lines_before_it(monkeypatch):
    from pipelines.engine.lines import LineTooLong, line_blocks

    monkeypatch.setattr(options, "_current", options.ReadSettings(max_line_bytes=1000))
    blocks = []
    with pytest.raises(LineTooLong, match="line 3 is longer than 1,000 bytes"):
        for block in line_blocks(io.BytesIO(b"a\nb\n" + b"x" * 5000 + b"\n"), 8):
            blocks.append(block)
    assert b"".join(data for _first, data in blocks) == b"a\nb\n"


def _numbered_lines(stream, source_file):
    items = (item if isinstance(item, beam.pvalue.TaggedOutput) else (source_file, item[0], item[1])
             for item in text_records(stream, "d", source_file))
    return unless_blank(items, stream, "d", source_file)


def _save_sorted(items, path):
    path.write_text(json.dumps(sorted(items)))


def _read_all(paths, root, out, *options, **read_options):
    """Records and rejects of ``paths`` read by ReadFiles, each sorted."""
    with BeamTestPipeline(runner="FnApiRunner", options=PipelineOptions(list(options))) as p:
        read = p | ReadFiles(paths, _numbered_lines, input_root=str(root), dataset="d",
                             members=lambda name: name.endswith(".txt"), **read_options)
        (read.records | "Records" >> beam.combiners.ToList()
         | "SaveRecords" >> beam.Map(_save_sorted, out / "records.json"))
        (read[REJECTED] | beam.Map(lambda r: (r["source_file"], r["reason"], r["record_id"]))
         | "Rejects" >> beam.combiners.ToList() | "SaveRejects" >> beam.Map(_save_sorted, out / "rejects.json"))
    return ([tuple(r) for r in json.loads((out / "records.json").read_text())],
            [tuple(r) for r in json.loads((out / "rejects.json").read_text())])


def test_files_cut_into_blocks_read_as_they_read_whole(tmp_path):
    """With several workers, compressed files and archive members are cut into blocks and
    parsed in parallel: the same records, numbered as in the file, and the same rejects
    (bad bytes by line number, empty and blank files, a truncated file) as read whole;
    blocks kept in the scratch folder."""
    lines = [f"line {n}".encode() if n % 37 else b"\xff bad bytes" for n in range(1, 400)]
    text = b"\n".join(lines) + b"\n"
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "big.gz").write_bytes(gzip.compress(text))
    with tarfile.open(inputs / "bundle.tgz", "w:gz") as tar:
        for name, data in (("a/member.txt", text), ("a/blank.txt", b"\n  \n" * 300), ("a/empty.txt", b"")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (inputs / "blank.gz").write_bytes(gzip.compress(b" \n" * 500))
    (inputs / "cut.gz").write_bytes(gzip.compress(text)[:200])
    (inputs / "small.txt").write_bytes(b"just one\n")
    paths = sorted(str(p) for p in inputs.iterdir())
    (tmp_path / "whole").mkdir()
    (tmp_path / "cut").mkdir()

    whole = _read_all(paths, inputs, tmp_path / "whole")
    cut = _read_all(paths, inputs, tmp_path / "cut", "--direct_running_mode=multi_threading",
                    "--direct_num_workers=2", f"--scratch_dir={tmp_path / 'scratch'}", cut_lines=True, cut_bytes=64)
    assert len(list((tmp_path / "scratch" / "blocks").iterdir())) > 20  # the files were cut
    assert cut[1] == whole[1]
    # A truncated file keeps the lines decompressed before the break: when cut, the lines
    # of every raw read that succeeded (read whole, those of the last full buffer).
    truncated = [(number, line) for source, number, line in cut[0] if source == "cut.gz"]
    last = truncated[-1][0]
    assert truncated == [(n, f"line {n}") for n in range(1, last + 1) if n % 37]  # 37, 74...: rejects
    assert {r for r in whole[0] if r[0] == "cut.gz"} <= {r for r in cut[0] if r[0] == "cut.gz"}
    assert [r for r in cut[0] if r[0] != "cut.gz"] == [r for r in whole[0] if r[0] != "cut.gz"]
    records, rejects = whole
    assert ("big.gz", 38, "line 38") in records and ("bundle.tgz!a/member.txt", 399, "line 399") in records
    assert ("big.gz", "bad_encoding", "line 37") in rejects
    assert ("bundle.tgz!a/empty.txt", "empty_file", "") in rejects
    assert ("blank.gz", "blank_file", "") in rejects and ("bundle.tgz!a/blank.txt", "blank_file", "") in rejects
    assert any(source == "cut.gz" and reason == "unreadable_file" for source, reason, _ in rejects)


def test_a_file_shared_out_is_recorded_once(tmp_path):
    """A truncated file cut into blocks for two workers keeps the lines before the break and
    is one ``unreadable_file`` reject; an archive without the wanted member one
    ``no_member`` reject."""
    text = b"".join(b"line %d\n" % n for n in range(1, 3000))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(text)[:4000])
    _tar(tmp_path / "other.tgz", {"a/other.csv": text})
    paths = [str(tmp_path / "cut.gz"), str(tmp_path / "other.tgz")]
    (tmp_path / "out").mkdir()
    records, rejects = _read_all(paths, tmp_path, tmp_path / "out", "--direct_running_mode=multi_threading",
                                 "--direct_num_workers=2", f"--scratch_dir={tmp_path / 'scratch'}",
                                 cut_lines=True, cut_bytes=64)
    numbers = [number for _source, number, _line in records]
    assert len(numbers) > 2 and numbers == list(range(1, len(numbers) + 1))
    assert [(source, reason) for source, reason, _ in rejects] == [("cut.gz", "unreadable_file"),
                                                                   ("other.tgz", "no_member")]


def test_one_worker_reads_files_whole(tmp_path):
    (tmp_path / "a.gz").write_bytes(gzip.compress(b"x\n" * 1000))
    _read_all([str(tmp_path / "a.gz")], tmp_path, tmp_path, f"--scratch_dir={tmp_path / 'scratch'}",
              cut_lines=True, cut_bytes=64)
    assert not (tmp_path / "scratch" / "blocks").exists()


def test_block_size_defaults_to_the_pipeline_option(tmp_path):
    """Without ``cut_bytes``, blocks are ``--block_bytes`` long."""
    (tmp_path / "a.gz").write_bytes(gzip.compress(b"some line\n" * 100))
    records, _ = _read_all([str(tmp_path / "a.gz")], tmp_path, tmp_path, "--direct_running_mode=multi_threading",
                           "--direct_num_workers=2", "--block_bytes=100", f"--scratch_dir={tmp_path / 'scratch'}",
                           cut_lines=True)
    assert len(list((tmp_path / "scratch" / "blocks").iterdir())) == 10
    assert [number for _, number, _ in records] == list(range(1, 101))


def _step_labels(paths, root, **read_options):
    pipeline = beam.Pipeline(options=PipelineOptions(["--direct_running_mode=multi_processing",
                                                      "--direct_num_workers=2"]))
    _ = pipeline | "Read" >> ReadFiles(paths, _numbered_lines, input_root=str(root), dataset="d", **read_options)
    labels = []

    class Labels(beam.pipeline.PipelineVisitor):
        def enter_composite_transform(self, node):
            labels.append(node.full_label)

        def visit_transform(self, node):
            labels.append(node.full_label)

    pipeline.visit(Labels())
    return labels


def test_split_files_are_not_cut_again_with_several_workers(tmp_path):
    """Byte ranges and plain files of one block are read as they are; a compressed file
    among them is still cut into blocks."""
    (tmp_path / "big.tsv").write_bytes(b"line\n" * 400)
    (tmp_path / "small.tsv").write_bytes(b"line\n" * 3)
    (tmp_path / "packed.gz").write_bytes(gzip.compress(b"line\n" * 3))
    plain = [str(tmp_path / "big.tsv"), str(tmp_path / "small.tsv")]
    options = dict(split_bytes=100, cut_lines=True, cut_bytes=100)
    assert "Read/Cut" not in _step_labels(plain, tmp_path, **options)
    assert "Read/Cut" in _step_labels(plain + [str(tmp_path / "packed.gz")], tmp_path, **options)
    assert "Read/Cut" in _step_labels(plain, tmp_path, cut_lines=True, cut_bytes=100)
    records, _ = _read_all(plain, tmp_path, tmp_path, "--direct_running_mode=multi_threading",
                           "--direct_num_workers=2", f"--scratch_dir={tmp_path / 'scratch'}", **options)
    assert len(records) == 403 and not (tmp_path / "scratch" / "blocks").exists()


def _kind_lines(stream, source_file, kind):
    for item in text_records(stream, "d", source_file):
        yield item if isinstance(item, beam.pvalue.TaggedOutput) else beam.pvalue.TaggedOutput(
            kind, (source_file, item[0], item[1]))


def _tar(path, members: dict):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("flags", [[], ["--direct_running_mode=multi_threading", "--direct_num_workers=2"]])
def test_files_of_several_kinds_read_in_one_step_each_reach_the_output_of_their_kind(tmp_path, flags):
    """Each file's kind picks its archive members and its output; an archive without the
    member of its kind is a no_member reject even when it holds another kind's."""
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir(), out.mkdir()
    _tar(inputs / "a.tgz", {"a.txt": b"a1\na2\n", "b.txt": b"not read\n"})
    (inputs / "b.gz").write_bytes(gzip.compress(b"".join(b"b%d\n" % n for n in range(1, 60))))
    _tar(inputs / "only-b.tgz", {"b.txt": b"b\n"})
    items = [(str(inputs / "a.tgz"), "a"), (str(inputs / "b.gz"), "b"), (str(inputs / "only-b.tgz"), "a")]
    with BeamTestPipeline(runner="FnApiRunner",
                          options=PipelineOptions([*flags, f"--scratch_dir={tmp_path / 'scratch'}"])) as p:
        read = p | ReadFiles(items, _kind_lines, input_root=str(inputs), dataset="d",
                             members=lambda kind, member: member == f"{kind}.txt", members_take_context=True,
                             outputs=("a", "b"), cut_lines=True, cut_bytes=40)
        for kind in ("a", "b"):
            (read[kind] | f"List{kind}" >> beam.combiners.ToList()
             | f"Save{kind}" >> beam.Map(_save_sorted, out / f"{kind}.json"))
        (read[REJECTED] | beam.Map(lambda r: (r["source_file"], r["reason"]))
         | "Rejects" >> beam.combiners.ToList() | "SaveRejects" >> beam.Map(_save_sorted, out / "rejects.json"))
        (read.records | "Untagged" >> beam.combiners.ToList() | beam.Map(_save_sorted, out / "untagged.json"))
    load = lambda name: [tuple(r) for r in json.loads((out / name).read_text())]  # noqa: E731
    assert load("a.json") == [("a.tgz!a.txt", 1, "a1"), ("a.tgz!a.txt", 2, "a2")]
    assert load("b.json") == [("b.gz", n, f"b{n}") for n in range(1, 60)]
    assert load("rejects.json") == [("only-b.tgz", "no_member")]
    assert load("untagged.json") == []
    # With two workers the compressed file was cut into blocks, whose lines kept their kind.
    assert (tmp_path / "scratch" / "blocks").exists() == bool(flags)


def test_a_block_missing_from_the_scratch_folder_fails_the_bundle_not_the_input(tmp_path):
    """A block's lines are counted only when it is parsed: a block that cannot be opened
    (removed by another build sharing the scratch folder) must fail loudly, never become
    the input file's reject while its lines go uncounted."""
    from pipelines.engine.read import FileBlock, _FileStreams, _ReadOneFile

    source = tmp_path / "in" / "data.txt"
    source.parent.mkdir()
    source.write_text("a\nb\n")
    opener = _FileStreams(str(tmp_path / "in"), "some_dataset", strict=False, decompress=True, members=None)
    reader = _ReadOneFile(lambda stream, name: iter(()), opener, options.ReadSettings())
    block = FileBlock(str(source), str(tmp_path / "scratch" / "block-gone"), "data.txt", 1, whole=False)
    with pytest.raises(Exception, match="block-gone"):
        list(reader.process(block))
