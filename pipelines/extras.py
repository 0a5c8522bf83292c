"""Optional parts of the package and the one line that names a missing one.

``pip install multiqa-corpus-pipelines`` gives every ``corpus`` command on local storage,
``gs://`` and the Hub. Heavier parts are extras: ``[s3]`` (Beam's and the fetch's
``s3://``), ``[train]`` (the training stack), ``[test]`` (the test tools). A module missing
from a broken install is named with the command that repairs it.
"""
from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

DISTRIBUTION = "multiqa-corpus-pipelines"

# Top-level module -> the extra that installs it.
EXTRA_OF_MODULE = {
    "boto3": "s3",
    "botocore": "s3",
    "torch": "train",
    "sentence_transformers": "train",
    "transformers": "train",
    "accelerate": "train",
    "pytest": "test",
    "hypothesis": "test",
    "py7zr": "test",
    "gcp_storage_emulator": "test",
    "moto": "test",
}

# URL scheme -> the module Beam's (and the fetch's) filesystem for it needs. Beam registers
# its s3:// filesystem without boto3 and fails only on first use.
MODULE_OF_SCHEME = {"s3": "boto3"}


class MissingExtra(ImportError):
    """An optional part of the package is not installed; the message says how to add it."""


def install_hint(module: str) -> str:
    """One line: ``module`` is missing, and the pip command that installs it."""
    top = module.split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra:
        return f"{top} is not installed: pip install '{DISTRIBUTION}[{extra}]'"
    return f"{top} is not installed, but the package needs it: pip install --force-reinstall {DISTRIBUTION}"


def require(module: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtra(install_hint(exc.name or module)) from None


def scheme_hint(path: str) -> str | None:
    """The install line for a path whose filesystem needs a missing extra, else None."""
    scheme = path.partition("://")[0] if "://" in path else ""
    module = MODULE_OF_SCHEME.get(scheme)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    extra = EXTRA_OF_MODULE[module]
    return f"{scheme}:// paths need the {extra} extra: pip install '{DISTRIBUTION}[{extra}]'"
