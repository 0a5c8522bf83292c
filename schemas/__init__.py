"""Schemas of the corpus: the row every shard holds and the manifest a run writes.

Installed as ``pipelines.schemas``; read them with
:func:`pipelines.corpus.schema.load_schema_document`.
"""
