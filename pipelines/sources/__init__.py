"""One module (or package) per upstream source; see :mod:`pipelines.corpus.source`."""
