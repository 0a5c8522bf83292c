"""``corpus fetch``: download the upstream files into the layout a build reads, resumably and
verified, to a local folder, ``gs://`` or ``s3://``. Its modules, each using only those
before it: :mod:`~pipelines.fetch.storage` (local paths, ``gs://`` and ``s3://``, and
:func:`~pipelines.fetch.storage.redact`, through which every message and record passes so
that credentials never appear), :mod:`~pipelines.fetch.upstream` (the registry of what to
fetch), :mod:`~pipelines.fetch.remote` (HTTP GETs with ranges and retries),
:mod:`~pipelines.fetch.records` (manifest, checksum registry, progress line),
:mod:`~pipelines.fetch.transfer` (one file, verified and resumable),
:mod:`~pipelines.fetch.unpack` (an archive marked ``unpack``, unpacked beside itself once
verified, a record per member) and :mod:`~pipelines.fetch.run` (the run and the command
line). For example::

    corpus fetch --sources squad,quora --to gs://bucket/raw
    corpus build --input-root gs://bucket/raw --output gs://bucket/corpus
"""
