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
