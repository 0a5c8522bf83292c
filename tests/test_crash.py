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


def test_builds_sharing_a_scratch_dir_keep_to_folders_of_their_own(tmp_path):
    """What a killed run left is cleared at the start of the next: with a shared
    ``--scratch_dir`` that must only ever be the same output's files."""
    from pipelines import build

    shared = str(tmp_path / "scratch")
    one, other = build.scratch_folder("gs://b/one", shared), build.scratch_folder("gs://b/other", shared)
    assert one != other and one.startswith(shared + "/build-") and other.startswith(shared + "/build-")
    assert build.scratch_folder("gs://b/one", shared) == one  # a rerun finds what its killed run left
    assert build.scratch_folder(str(tmp_path / "out")) == str(tmp_path / "out" / "_work" / "scratch")
    for folder in (one, other):
        Path(folder, "blocks").mkdir(parents=True)
        Path(folder, "blocks", "block-0").write_bytes(b"<row />\n")
    build._clear_scratch(one)
    assert not Path(one, "blocks", "block-0").exists()
    assert Path(other, "blocks", "block-0").read_bytes() == b"<row />\n"
