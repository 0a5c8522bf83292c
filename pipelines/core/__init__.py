"""Shared machinery used by every source; each concern lives in one module."""
# Beam worker settings, applied wherever the package is imported: in the launching process
# and in every worker process that unpickles one of the package's steps (see the module).
from pipelines.core import worker_settings  # noqa: F401
