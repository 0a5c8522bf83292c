"""Build the multi-source question/answer training corpus for sentence embeddings.

Layout:
  pipelines.core      shared machinery: schema, normalisation, dedup, sharded sink,
                      count verification, file access, the build pipeline itself
  pipelines.sources   one module per upstream source: its files, parse and pair rules
  pipelines.registry  every dataset of the corpus with its documented total and mix weight
  pipelines.cli       the `corpus` command
"""
__version__ = "0.1.0"
