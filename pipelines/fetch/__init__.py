"""``corpus fetch``: download the upstream files into the layout a build reads, resumably
and verified, to a local folder, ``gs://`` or ``s3://``."""
