"""The `corpus` command as a user runs it: sample build, verify, and readable errors."""
import json
import shutil

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


def test_verify_of_a_folder_without_manifest(tmp_path, capsys):
    assert run(["verify", str(tmp_path)]) == 2
    assert "not the output of a complete build" in capsys.readouterr().err


def test_secrets_in_beam_flags_never_reach_the_manifest():
    from pipelines.core.build import scrub_args
    assert scrub_args(["--s3_secret_access_key=abc", "--s3_access_key_id", "AKIA", "--runner=X"]) == [
        "--s3_secret_access_key=***", "--s3_access_key_id", "***", "--runner=X"]
