"""Beam's filesystems (local, ``gs://``, ``s3://``) outside a running pipeline.

Planning a build lists its input and the manifest is written after the run, both through
Beam's ``FileSystems``; its ``s3://`` filesystem reads its client settings from the
pipeline options, which it otherwise learns only inside a pipeline.

Against a GCS emulator (``STORAGE_EMULATOR_HOST``, used by the tests) Beam's credential
lookup would retry for about half a minute before going anonymous; the emulator takes no
credentials, so the lookup is marked done and empty. That touches Beam internals
(``apache_beam.internal.gcp.auth._Credentials``), only with the emulator set, and
``tests/runtime/test_filesystems.py`` fails if a Beam upgrade moves them.
"""
from __future__ import annotations

import os

from pipelines import extras


class UnknownFilesystem(ValueError):
    """A path whose scheme no installed filesystem serves."""


def check_available(*paths: str | None) -> None:
    """Raise, in one line, when Beam has no filesystem for one of ``paths``: the extra to
    install (:class:`pipelines.extras.MissingExtra`) or the schemes it knows."""
    from apache_beam.io.filesystem import BeamIOError
    from apache_beam.io.filesystems import FileSystems

    for path in filter(None, paths):
        hint = extras.scheme_hint(path)
        if hint:
            raise extras.MissingExtra(hint)
        try:
            FileSystems.get_filesystem(path)
        except (ValueError, BeamIOError):  # no such scheme, or its library missing (hdfs://)
            raise UnknownFilesystem(f"no filesystem for {path}: use a local path, gs:// or s3://") from None


def prepare(options) -> None:
    """Make Beam's ``FileSystems`` usable outside a running pipeline with ``options``."""
    from apache_beam.io.filesystems import FileSystems

    FileSystems.set_options(options)
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        skip_credentials_for_emulator()


def skip_credentials_for_emulator() -> bool:
    """Mark Beam's GCS credentials as looked up and empty; False when Beam has no such
    internals (then its own lookup runs, only slower against an emulator)."""
    try:
        from apache_beam.internal.gcp import auth
    except ImportError:  # Beam without its gcp extra
        return False
    credentials = getattr(auth, "_Credentials", None)
    if credentials is None or not hasattr(credentials, "_credentials_init"):
        return False
    if not credentials._credentials_init:
        with credentials._credentials_lock:
            credentials._credentials = None
            credentials._credentials_init = True
    return True
