"""The Beam engine: reading files of every kind (byte ranges, blocks, archive members,
file-level rejects, progress), joins, deterministic shards and Arrow helpers.

Sources use only the public names listed in ``__all__``.
"""
