"""The corpus's own rules, free of any runner: the registry of datasets, the row schema,
text normalisation, rejected records, record accounting, count verdicts, the training mix,
the manifest, and the contract a source implements (:mod:`pipelines.corpus.source`)."""
