"""What an install gives: the declared requirements, the version, and one line for a missing
optional part. The install itself (the wheel in a fresh environment) is `.ci/install-check`."""
import re
import sys
from importlib.metadata import requires, version
from pathlib import Path

import pytest

import pipelines
from pipelines import extras
from pipelines.cli import run

REPO = Path(__file__).resolve().parent.parent
# The libraries the package is built around are install requirements, not extras.
CORE = ("apache-beam", "pyarrow", "lxml", "smart-open", "google-cloud-storage", "datasets", "matplotlib")


def _requirement_names(extra: str | None) -> set[str]:
    names = set()
    for requirement in requires("multiqa-corpus-pipelines") or ():
        marker = re.search(r'extra == "([^"]+)"', requirement)
        if (marker.group(1) if marker else None) == extra:
            names.add(re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower())
    return names


def test_the_core_libraries_are_install_requirements_and_the_heavy_parts_extras():
    assert set(CORE) <= _requirement_names(None)
    assert "apache-beam[gcp]" in " ".join(requires("multiqa-corpus-pipelines")).replace(" ", "")
    assert {"boto3"} <= _requirement_names("s3")
    assert {"torch", "sentence-transformers"} <= _requirement_names("train")
    assert {"pytest", "build"} <= _requirement_names("test")
    assert not {"torch", "boto3", "pytest"} & _requirement_names(None)


def test_every_extra_named_in_a_hint_exists():
    declared = {e for r in requires("multiqa-corpus-pipelines") for e in re.findall(r'extra == "([^"]+)"', r)}
    assert set(extras.EXTRA_OF_MODULE.values()) <= declared


def test_the_pinned_requirements_satisfy_the_install_requirements():
    """requirements.txt pins what setup.py allows: the same package, within its range."""
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)", line)
        if match:
            pins[match.group(1).lower()] = match.group(3)
    for name in CORE:
        assert name in pins, f"{name} is not pinned in requirements.txt"
        assert version(name) == pins[name], f"{name}: installed {version(name)}, pinned {pins[name]}"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        run(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"corpus {pipelines.__version__} (apache-beam {version('apache-beam')}")
    assert version("multiqa-corpus-pipelines") == pipelines.__version__


def test_s3_without_its_extra_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "boto3", None)  # as if boto3 were not installed
    assert run(["build", "--sample", "--output", "s3://bucket/out"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "corpus build: s3:// paths need the s3 extra: pip install 'multiqa-corpus-pipelines[s3]'"


def test_a_path_no_filesystem_serves_is_one_line(capsys):
    assert run(["verify", "hdfs://cluster/out"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("corpus verify: no filesystem for hdfs://cluster/out") and "\n" not in err


def test_a_module_missing_from_the_install_is_one_line(tmp_path, monkeypatch, capsys):
    (tmp_path / "manifest.json").write_text('{"datasets": {}}')
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith(("matplotlib.", "pipelines.report"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(pipelines, "report", raising=False)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert run(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("corpus report: matplotlib is not installed, but the package needs it: "
                   "pip install --force-reinstall multiqa-corpus-pipelines")


def test_the_training_stack_missing_names_the_train_extra(monkeypatch):
    # The package and any of its modules an earlier test of this process imported.
    for name in [n for n in sys.modules if n.startswith("sentence_transformers.")] + ["sentence_transformers"]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(extras.MissingExtra, match=re.escape("pip install 'multiqa-corpus-pipelines[train]'")):
        extras.require("sentence_transformers.base.sampler")
