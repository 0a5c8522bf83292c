"""A build killed midway and run again gives the same bytes as a build never interrupted."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipelines.cli import run
from tests.helpers import TEST_BEAM_ARGS

DATASETS = "stackexchange_title_body,stackexchange_title_answer,squad,quora_triplets"


def _outputs(root: Path) -> dict:
    """Every shard and dead-letter file below ``root``, by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and (p.suffix == ".parquet" or p.name.endswith(".jsonl.gz"))
            and "_work" not in p.parts}


def test_killed_build_rerun_matches_a_clean_build(tmp_path):
    args = ["build", "--sample", "--datasets", DATASETS, *TEST_BEAM_ARGS]
    clean = tmp_path / "clean"
    assert run([*args, "--output", str(clean)]) == 0

    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "pipelines", *args, "--output", str(killed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    deadline = time.monotonic() + 120
    # Kill as soon as the build has started writing: spill runs or the first shards exist.
    while time.monotonic() < deadline and process.poll() is None:
        if any(p.is_file() for p in killed.rglob("*")) if killed.exists() else False:
            break
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "manifest.json").exists(), "the build finished before it could be killed"

    assert run([*args, "--output", str(killed)]) == 0
    assert (killed / "manifest.json").exists()
    expected, got = _outputs(clean), _outputs(killed)
    assert sorted(got) == sorted(expected)
    for name, data in expected.items():
        assert got[name] == data, f"{name} differs from the uninterrupted build"
