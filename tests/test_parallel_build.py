"""A build on two worker processes writes the same bytes as a build in one process.
(Two worker threads, source by source: ``SourceCase.test_two_workers_write_the_same_bytes``.)"""
import json
import subprocess
import sys
from pathlib import Path

from tests.sample_corpus import sample_corpus

# Blocks of 1 KB: every sample file of more than a kilobyte that is read through (compressed
# files, archive members, GooAQ's JSON lines) is cut into several, parsed by both workers.
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


def test_two_worker_processes_of_the_command_write_the_same_shards_as_one_process(tmp_path):
    """The ``corpus`` command, as a user runs it, with two worker processes."""
    one = sample_corpus()  # every dataset of the bundled sample, built in this process
    done = subprocess.run([sys.executable, "-m", "pipelines", "build", "--sample",
                           "--output", str(tmp_path / "out"), *TWO_WORKERS,
                           f"--block_bytes={SMALL_BLOCK_BYTES}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    _assert_same_build(one, tmp_path / "out")

