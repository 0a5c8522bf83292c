"""Progress of local builds: counts from the real readers, the line people read, and
how often it is written."""
from __future__ import annotations

import gzip
import json
import time

import pytest

from pipelines.engine import files, options, progress
from pipelines.runtime import progress_report
from pipelines.engine.lines import text_lines
from tests.helpers import run_build


@pytest.fixture
def reporting(tmp_path, monkeypatch):
    """A spool folder that the readers of this process report to."""
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(options, "_current", options.ReadSettings(progress_dir=str(spool)))
    return spool


def test_reading_a_file_counts_its_records_and_bytes(tmp_path, reporting):
    path = tmp_path / "source_a" / "lines.jsonl.gz"
    path.parent.mkdir()
    with gzip.open(path, "wt") as out:
        out.writelines(f'{{"n": {n}}}\n' for n in range(2500))
    inputs = [progress_report.InputFile(str(path), "source_a", path.stat().st_size),
              progress_report.InputFile(str(tmp_path / "source_b" / "x"), "source_b", 1000)]
    with files.open_input(str(path)) as stream:
        assert sum(1 for _ in text_lines(stream)) == 2500
    totals = progress_report.read_spool(str(reporting), inputs)
    assert totals.per_source["source_a"] == {"records": 2500, "bytes": path.stat().st_size,
                                             "files_done": 1, "files_reading": 0}
    assert totals.per_source["source_b"]["files_done"] == 0
    line = progress_report.progress_line(totals, inputs, elapsed=2.0)
    assert line.startswith("progress: 1/2 input files read; 2,500 records")
    assert "reading done in about" in line


def test_a_file_being_read_shows_its_source_and_position(tmp_path, reporting, monkeypatch):
    monkeypatch.setattr(progress, "SPOOL_WRITE_SECONDS", 0.0)
    path = tmp_path / "stackexchange" / "Posts.xml"
    path.parent.mkdir()
    path.write_bytes(b"line\n" * 400_000)
    inputs = [progress_report.InputFile(str(path), "stackexchange", path.stat().st_size)]
    with files.open_input(str(path)) as stream:
        lines = text_lines(stream)
        for _ in range(200_000):
            next(lines)
        totals = progress_report.read_spool(str(reporting), inputs)
    assert totals.per_source["stackexchange"]["files_reading"] == 1
    assert totals.records == 200_000
    assert 0 < totals.bytes_read <= path.stat().st_size
    assert "reading stackexchange (0/1 files)" in progress_report.progress_line(totals, inputs, elapsed=1.0)


def test_nothing_is_counted_when_no_build_reports(tmp_path, monkeypatch):
    monkeypatch.setattr(options, "_current", options.ReadSettings())
    path = tmp_path / "a.txt"
    path.write_text("x\n")
    with files.open_input(str(path)) as stream:
        list(text_lines(stream))
    assert progress.process_meter() is None


def test_the_reporter_writes_at_most_one_line_per_interval():
    lines = []
    with progress_report.ProgressReporter([], interval=0.25, write=lines.append):
        time.sleep(1.1)
    # Four or five timed lines, and one summary line at the end: not a flood.
    assert 3 <= len(lines) <= 6
    assert lines[-1].startswith("progress: pipeline finished in")


def test_a_sample_build_reports_its_sources_bytes_and_end(tmp_path, capsys):
    run_build(tmp_path / "out", sample=True, datasets=["squad", "quora_triplets"])
    err = capsys.readouterr().err
    summary = [line for line in err.splitlines() if line.startswith("progress: pipeline finished")]
    assert len(summary) == 1
    assert "records" in summary[0] and " of " in summary[0]
    read, total = summary[0].split("read ", 1)[1].split(" input files")[0].split(" of ")
    assert int(read) >= 1 and int(total) >= int(read)


def test_remote_runners_get_no_reporter():
    assert progress.is_local_runner(None)
    assert progress.is_local_runner("FnApiRunner")
    assert not progress.is_local_runner("DataflowRunner")


def _read_with(paths, root, *options, **read_options):
    from pipelines.engine import options as options_module

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.test_pipeline import TestPipeline

    from pipelines.engine.read import ReadFiles
    from pipelines.engine.formats import text_records

    def lines(stream, source_file):
        yield from text_records(stream, "d", source_file)

    # The spool travels to the reading steps with the pipeline's options, as in a build.
    flags = [*options, f"--progress_dir={options_module.current().progress_dir}"]
    with TestPipeline(runner="FnApiRunner", options=PipelineOptions(flags)) as p:
        read = p | ReadFiles(paths, lines, input_root=str(root), dataset="d", **read_options)
        read.records | beam.combiners.Count.Globally()


def test_a_file_read_in_byte_ranges_counts_once_all_ranges_are_read(tmp_path, reporting, monkeypatch):
    monkeypatch.setattr(progress, "SPOOL_WRITE_SECONDS", 0.0)
    path = tmp_path / "msmarco" / "collection.tsv"
    path.parent.mkdir()
    path.write_bytes(b"".join(b"%d\tpassage %d\n" % (n, n) for n in range(3000)))
    inputs = [progress_report.InputFile(str(path), "msmarco", path.stat().st_size)]
    _read_with([str(path)], tmp_path, split_bytes=path.stat().st_size // 5)
    totals = progress_report.read_spool(str(reporting), inputs)
    assert totals.per_source["msmarco"] == {"records": 3000, "bytes": path.stat().st_size,
                                            "files_done": 1, "files_reading": 0}


def test_a_file_cut_into_blocks_counts_its_bytes_and_every_blocks_records(tmp_path, reporting):
    """Cut by one worker and parsed by both: the file's bytes once, each record once."""
    path = tmp_path / "wikianswers" / "part-00000.gz"
    path.parent.mkdir()
    with gzip.open(path, "wt") as out:
        out.writelines(f"q:question {n}?\n" for n in range(3000))
    inputs = [progress_report.InputFile(str(path), "wikianswers", path.stat().st_size)]
    _read_with([str(path)], tmp_path, "--direct_running_mode=multi_threading", "--direct_num_workers=2",
               f"--scratch_dir={tmp_path / 'scratch'}", cut_lines=True, cut_bytes=4096)
    assert len(list((tmp_path / "scratch" / "blocks").iterdir())) > 5
    totals = progress_report.read_spool(str(reporting), inputs)
    assert totals.per_source["wikianswers"] == {"records": 3000, "bytes": path.stat().st_size,
                                                "files_done": 1, "files_reading": 0}


def test_the_summary_names_listed_files_the_build_never_opened():
    inputs = [progress_report.InputFile("q.json", "trivia_qa", 10), progress_report.InputFile("e1.txt", "trivia_qa", 5),
              progress_report.InputFile("e2.txt", "trivia_qa", 5), progress_report.InputFile("a.tsv", "quora", 7)]
    totals = progress_report.Totals(records=3, bytes_read=15, per_source={
        "trivia_qa": {"records": 3, "bytes": 15, "files_done": 2, "files_reading": 0},
        "quora": {"records": 0, "bytes": 0, "files_done": 0, "files_reading": 1}})
    line = progress_report.summary_line(totals, inputs, 1.0)
    assert line.endswith("read 2 of 4 input files (15 B), 3 records; not needed: 1 of trivia_qa")
    everything = progress_report.Totals(records=3, bytes_read=27, per_source={
        "trivia_qa": {"records": 3, "bytes": 20, "files_done": 3, "files_reading": 0},
        "quora": {"records": 0, "bytes": 7, "files_done": 1, "files_reading": 0}})
    assert "not needed" not in progress_report.summary_line(everything, inputs, 1.0)


def test_each_write_holds_only_what_changed_so_many_small_files_cost_linear_time(tmp_path, reporting):
    """A file's end is written at once, with that file's counts only: a reader of many
    small files (TriviaQA's evidence) writes one short line per file, not all files so far."""
    folder = tmp_path / "triviaqa" / "evidence"
    folder.mkdir(parents=True)
    inputs = []
    for n in range(300):
        path = folder / f"doc{n}.txt"
        path.write_text(f"line {n}\n")
        inputs.append(progress_report.InputFile(str(path), "trivia_qa", path.stat().st_size))
        with files.open_input(str(path)) as stream:
            list(text_lines(stream))
    [journal] = list(reporting.iterdir())
    lines = journal.read_text().splitlines()
    assert 300 <= len(lines) <= 310  # one at each file's end, and the timed ones
    assert all(len(json.loads(line)) == 1 for line in lines)
    totals = progress_report.read_spool(str(reporting), inputs)
    assert totals.per_source["trivia_qa"]["files_done"] == 300
    assert totals.records == 300


def test_the_spool_is_read_on_from_where_it_stopped_and_a_half_written_line_waits(tmp_path):
    journal = tmp_path / "1-a.jsonl"
    done = {"records": 5, "position": 10, "done": True}
    journal.write_text('{"a": {"records": 1, "position": 2, "done": false}}\n'
                       '{"a": ' + '{"records": 3, "position": 4, "done": false}}\n'
                       + '{"b": {"rec')
    spool = progress_report.Spool(str(tmp_path))
    assert spool.merged() == {"a": {"records": 3, "position": 4, "done": False}}
    with open(journal, "a") as out:
        out.write('ords": 7, "position": 8, "done": true}}\n{"a": ' + json.dumps(done) + "}\n")
    assert spool.merged() == {"a": done, "b": {"records": 7, "position": 8, "done": True}}
