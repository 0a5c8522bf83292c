"""The Beam engine: reading files of every kind (byte ranges, blocks, archive members,
file-level rejects, progress), joins, deterministic shards and Arrow helpers.

Sources use only the public names listed in ``__all__``."""
# Settings of Beam's SDK workers (see the module) take effect in every process that
# imports the engine: the launching process and every worker unpickling one of its steps.
from pipelines.runtime import worker_settings  # noqa: F401
