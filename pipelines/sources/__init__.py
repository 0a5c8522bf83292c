"""One module (or package) per upstream source; see :mod:`pipelines.core.source`."""
