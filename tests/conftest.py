"""Shared fixtures.

``upstream_samples`` is the folder of real upstream excerpts (``../shared/upstream-samples``
beside the checkout, or ``$CORPUS_UPSTREAM_SAMPLES``); tests that need it are skipped with
the reason when it is absent. Temporary files of the session (Beam makes a folder for every
pipeline object, run or not) go below pytest's own temporary folder, which pytest prunes.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def upstream_samples_dir() -> Path:
    return Path(os.environ.get("CORPUS_UPSTREAM_SAMPLES", REPO.parent / "shared" / "upstream-samples"))


@pytest.fixture(scope="session")
def upstream_samples() -> Path:
    path = upstream_samples_dir()
    if not path.is_dir():
        pytest.skip(f"real upstream excerpts not found at {path} "
                    "(set CORPUS_UPSTREAM_SAMPLES to the upstream-samples folder)")
    return path


@pytest.fixture(autouse=True, scope="session")
def _offline_environment():
    # Nothing in the tests may reach the network: keep credential lookups on loopback.
    os.environ.setdefault("NO_GCE_CHECK", "true")
    os.environ.setdefault("GCE_METADATA_HOST", "127.0.0.1:9")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    yield


@pytest.fixture(autouse=True, scope="session")
def _temporary_files_in_the_session_folder(tmp_path_factory):
    # Beam's Pipeline() makes a beam-pipeline-temp* folder that only run() removes: the
    # graph tests build pipelines they never run. Subprocesses get the folder by TMPDIR.
    folder = str(tmp_path_factory.mktemp("tmp"))
    before, tmpdir = tempfile.tempdir, os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = folder, folder
    yield
    tempfile.tempdir = before
    if tmpdir is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = tmpdir
