"""The `corpus` command as a user runs it: sample build, verify, and readable errors."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import run
from tests.helpers import TEST_BEAM_ARGS


@pytest.fixture(scope="module")
def sample_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample") / "out"
    assert run(["build", "--sample", "--output", str(out), "--datasets",
                "stackexchange_title_body,stackexchange_duplicate_questions", *TEST_BEAM_ARGS]) == 0
    return out


def test_sample_build_prints_the_count_table(sample_output, capsys):
    manifest = json.loads((sample_output / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["datasets"]["msmarco_triplets"]["status"] in ("not selected", "not implemented")
    assert manifest["datasets"]["stackexchange_title_body"]["verdict"] == "match"
    config = json.loads((sample_output / "data_config.json").read_text())
    for entry in config:
        for name in entry["files"]:
            assert (sample_output / name).is_file()
    assert {i["path"] for i in manifest["inputs"]} >= {"stackexchange/coffee.stackexchange.com.7z"}
    assert all(len(i["sha256"]) == 64 for i in manifest["inputs"])


def test_verify_recounts_and_catches_a_damaged_shard(sample_output, tmp_path, capsys):
    assert run(["verify", str(sample_output)]) == 0
    assert "counts match the manifest" in capsys.readouterr().out
    copy = tmp_path / "copy"
    shutil.copytree(sample_output, copy)
    shard = next((copy / "stackexchange_title_body").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:100])
    assert run(["verify", str(copy)]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_unknown_dataset_is_one_readable_line(tmp_path, capsys):
    assert run(["build", "--sample", "--output", str(tmp_path), "--datasets", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("corpus build: unknown dataset id 'nope'") and "\n" not in err


def test_missing_source_folder_says_what_layout_is_expected(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    assert run(["build", "--input-root", str(tmp_path / "in"), "--output", str(tmp_path / "out"),
                "--datasets", "stackexchange_title_body"]) == 2
    assert "one folder per source under --input-root" in capsys.readouterr().err


def test_verify_as_a_command_exits_cleanly(sample_output):
    """`corpus verify` in a process of its own, as `make sample` runs it, several times:
    reading shards with pyarrow's thread pool made the process abort at exit about half the
    time (exit code 134 after a correct report)."""
    command = shutil.which("corpus", path=str(Path(sys.executable).parent))
    assert command, "the corpus command is installed beside this Python (pip install -e .)"
    for _ in range(6):
        result = subprocess.run([command, "verify", str(sample_output)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "counts match the manifest" in result.stdout


def test_verify_of_a_folder_without_manifest(tmp_path, capsys):
    assert run(["verify", str(tmp_path)]) == 2
    assert "not the output of a complete build" in capsys.readouterr().err


def test_secrets_in_beam_flags_never_reach_the_manifest():
    from pipelines.corpus.manifest import scrub_args
    assert scrub_args(["--s3_secret_access_key=abc", "--s3_access_key_id", "AKIA", "--runner=X"]) == [
        "--s3_secret_access_key=***", "--s3_access_key_id", "***", "--runner=X"]


def test_a_mistyped_beam_flag_is_refused_before_anything_runs(tmp_path, capsys):
    assert run(["build", "--sample", "--output", str(tmp_path / "out"), "--runer=DataflowRunner"]) == 2
    err = capsys.readouterr().err
    assert "unknown option --runer=DataflowRunner" in err
    assert not (tmp_path / "out").exists()


def test_input_root_pointing_at_a_source_folder_gets_a_hint(tmp_path, capsys):
    source = tmp_path / "stackexchange"
    source.mkdir()
    (source / "example.stackexchange.com.7z").write_bytes(b"7z")
    assert run(["build", "--input-root", str(source), "--output", str(tmp_path / "out")]) == 2
    assert "looks like the 'stackexchange' source folder itself" in capsys.readouterr().err


def test_rerun_is_a_no_op_changed_options_are_refused_and_force_rebuilds(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["build", "--sample", "--output", str(out), "--datasets", "stackexchange_title_body", *TEST_BEAM_ARGS]
    assert run(args) == 0
    shard = next((out / "stackexchange_title_body").glob("*.parquet"))
    first = shard.read_bytes()
    shard.touch()
    before = shard.stat().st_mtime_ns
    capsys.readouterr()
    assert run(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert shard.stat().st_mtime_ns == before
    changed = args + ["--source-option", "stackexchange.exclude_tags=python"]
    assert run(changed) == 2
    assert "--force" in capsys.readouterr().err
    # Excluding a tag changes the sample's counts: the rebuild happens and reports the mismatch.
    assert run(changed + ["--force"]) == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"]["source_options"] == {"stackexchange": {"exclude_tags": "python"}}
    assert run(args + ["--force"]) == 0
    assert next((out / "stackexchange_title_body").glob("*.parquet")).read_bytes() == first


def test_a_killed_build_rerun_gives_identical_shards(tmp_path):
    """A run that died after writing some files (no manifest, a temporary left behind, a
    stale shard of another shard count) is repaired by running it again."""
    clean = tmp_path / "clean"
    args = ["--sample", "--datasets", "stackexchange_title_body,stackexchange_title_answer", *TEST_BEAM_ARGS]
    assert run(["build", "--output", str(clean), *args]) == 0
    crashed = tmp_path / "crashed"
    shutil.copytree(clean, crashed)
    (crashed / "manifest.json").unlink()
    body_dir = crashed / "stackexchange_title_body"
    shard = next(body_dir.glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:50])  # half-written
    (body_dir / f"{shard.name}.inprogress-0123").write_bytes(b"partial")
    (body_dir / "stackexchange_title_body-00003-of-00007.parquet").write_bytes(b"stale")
    assert run(["build", "--output", str(crashed), *args]) == 0
    for dataset in ("stackexchange_title_body", "stackexchange_title_answer"):
        names = sorted(p.name for p in (clean / dataset).iterdir())
        assert names == sorted(p.name for p in (crashed / dataset).iterdir())
        for name in names:
            assert (clean / dataset / name).read_bytes() == (crashed / dataset / name).read_bytes()


def test_source_option_typos_and_foreign_sources_are_refused(tmp_path, capsys):
    base = ["build", "--sample", "--output", str(tmp_path / "out"), "--datasets", "stackexchange_title_body"]
    assert run(base + ["--source-option", "stackexchange.exclude_tag=x"]) == 2
    assert "--source-option for stackexchange not used by this run: exclude_tag" in capsys.readouterr().err
    assert run(base + ["--source-option", "msmarco.negatives=3"]) == 2
    assert "which this run does not build" in capsys.readouterr().err


def test_checksums_verified_by_a_fetch_are_reused(tmp_path):
    """Inputs that `corpus fetch` verified are not read again for the manifest's checksums."""
    from pipelines.build import fetched_checksums

    root = tmp_path / "in"
    shutil.copytree(Path(__file__).resolve().parents[1] / "pipelines/sources/squad/sample", root)
    target = root / "squad_v2" / "train-v2.0.json"
    (root / "_fetch").mkdir()
    (root / "_fetch" / "manifest.json").write_text(json.dumps({"files": {
        "squad_v2/train-v2.0.json": {"status": "fetched", "bytes": target.stat().st_size,
                                     "sha256": "f" * 64}}}))
    assert fetched_checksums(str(root)) == {"squad_v2/train-v2.0.json": (target.stat().st_size, "f" * 64)}
    assert run(["build", "--input-root", str(root), "--output", str(tmp_path / "out"),
                "--datasets", "squad", "--source-option", "squad.splits=train,dev", *TEST_BEAM_ARGS]) == 0
    inputs = {i["path"]: i for i in json.loads((tmp_path / "out" / "manifest.json").read_text())["inputs"]}
    assert inputs["squad_v2/train-v2.0.json"]["sha256"] == "f" * 64
    assert inputs["squad_v2/train-v2.0.json"]["sha256_from"] == "fetch manifest"
    other = [i for p, i in inputs.items() if p != "squad_v2/train-v2.0.json"]
    assert other and all(len(i["sha256"]) == 64 and "sha256_from" not in i for i in other)


def test_the_command_runs_with_the_collector_on_and_what_its_imports_made_frozen():
    # The entry point imports the command with the collector off, then freezes what the
    # imports made and turns the collector on before the command runs.
    probe = ("import gc, pipelines.cli\n"
             "def probe():\n"
             "    print(gc.isenabled(), gc.get_freeze_count())\n"
             "pipelines.cli.main = probe\n"
             "import pipelines.__main__ as entry\n"
             "entry.main()\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    enabled, frozen = result.stdout.split()
    assert enabled == "True" and int(frozen) > 50_000


def test_python_m_pipelines_is_the_command():
    result = subprocess.run([sys.executable, "-m", "pipelines", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "build" in result.stdout
