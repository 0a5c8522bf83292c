"""A build on two worker processes writes the same bytes as a build in one process."""
import json
from pathlib import Path

from tests.helpers import run_build
from tests.sample_corpus import sample_corpus


def _files(output: Path) -> dict[str, bytes]:
    """Every shard and dead-letter file of a build, by path below the output folder."""
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*"))
            if p.is_file() and p.suffix in (".parquet", ".gz")}


# Blocks of 1 KB: every sample file of more than a kilobyte that is read through (compressed
# files, archive members, GooAQ's JSON lines) is cut into several, parsed by both workers.
SMALL_BLOCK_BYTES = 1024


def test_two_worker_processes_write_the_same_shards_as_one_process(tmp_path, monkeypatch):
    one = sample_corpus()  # every dataset of the bundled sample, built in this process
    monkeypatch.setenv("CORPUS_BLOCK_BYTES", str(SMALL_BLOCK_BYTES))
    two = run_build(tmp_path / "out", sample=True,
                    beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    expected, written = _files(one), _files(two.output)
    assert written.keys() == expected.keys()
    assert [name for name in expected if written[name] != expected[name]] == []
    first = json.loads((one / "manifest.json").read_text())
    for dataset, entry in first["datasets"].items():
        assert two.manifest["datasets"][dataset].get("rows") == entry.get("rows"), dataset
        assert two.manifest["datasets"][dataset].get("accounting") == entry.get("accounting"), dataset
