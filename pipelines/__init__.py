"""Build the multi-source question/answer training corpus for sentence embeddings.

Layout (docs/architecture.md; tests/test_layers.py checks who imports what):
  pipelines.corpus    the corpus's own rules: registry, row schema, normalisation, rejects,
                      accounting, verdicts, mix, manifest, and the Source contract
  pipelines.engine    Beam I/O: reading files of every kind, joins, deterministic shards
  pipelines.runtime   runner choice, the run's options, anything specific to one runner
  pipelines.fetch     `corpus fetch` and the storage it writes to
  pipelines.sources   one module per upstream source: its parser and pair rules
  pipelines.build     the build: sources -> normalise -> shards -> manifest
  pipelines.cli       the `corpus` command
"""
__version__ = "0.1.0"
