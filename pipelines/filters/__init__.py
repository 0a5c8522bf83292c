"""Steps between normalisation and the shards that a build runs only when asked:
decontamination against evaluation sets (``--decontaminate``) and deduplication
(``--dedup``). Each drops rows as rejected records with their reason, so the accounting
holds with them as without them. They use the corpus layer and the engine's public names.
"""
