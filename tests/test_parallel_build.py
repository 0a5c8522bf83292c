"""A build on two worker processes writes the same bytes as a build in one process."""
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import run_build
from tests.sample_corpus import sample_corpus

# Blocks of 1 KB: every sample file of more than a kilobyte that is read through (compressed
# files, archive members, GooAQ's JSON lines) and is cut is cut into several, parsed by both
# workers (in stripes, only the files that hold much of a source's input are cut).
SMALL_BLOCK_BYTES = 1024
TWO_WORKERS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def _files(output: Path) -> dict[str, bytes]:
    """Every shard and dead-letter file of a build, by path below the output folder."""
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and p.suffix in (".parquet", ".gz")}


def _assert_same_build(one: Path, two: Path) -> None:
    expected, written = _files(one), _files(two)
    assert written.keys() == expected.keys()
    assert [name for name in expected if written[name] != expected[name]] == []
    first, second = (json.loads((out / "manifest.json").read_text()) for out in (one, two))
    for dataset, entry in first["datasets"].items():
        assert second["datasets"][dataset].get("rows") == entry.get("rows"), dataset
        assert second["datasets"][dataset].get("accounting") == entry.get("accounting"), dataset


def test_two_forked_worker_processes_write_the_same_shards_as_one_process(tmp_path):
    """The ``corpus`` command, as a user runs it: its two workers are forked from it
    (:mod:`pipelines.runtime.local_workers`)."""
    one = sample_corpus()  # every dataset of the bundled sample, built in this process
    env = {**os.environ, "CORPUS_BLOCK_BYTES": str(SMALL_BLOCK_BYTES)}
    done = subprocess.run([sys.executable, "-m", "pipelines", "build", "--sample",
                           "--output", str(tmp_path / "out"), *TWO_WORKERS],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_build(one, tmp_path / "out")


def test_two_worker_processes_started_by_beam_write_the_same_shards(tmp_path, monkeypatch):
    """In a process that runs other threads (this one), Beam starts the workers itself.
    Files are shared out as a remote runner shares them: cut into blocks by one worker
    (``CORPUS_SPREAD_BY=blocks``; the forked build above reads them in stripes)."""
    one = sample_corpus()
    monkeypatch.setenv("CORPUS_BLOCK_BYTES", str(SMALL_BLOCK_BYTES))
    monkeypatch.setenv("CORPUS_SPREAD_BY", "blocks")
    monkeypatch.setenv("CORPUS_FORK_WORKERS", "0")
    two = run_build(tmp_path / "out", sample=True, beam_args=TWO_WORKERS)
    _assert_same_build(one, two.output)
