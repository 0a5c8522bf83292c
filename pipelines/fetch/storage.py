"""Storage locations for ``corpus fetch`` and Beam: local folders, ``gs://`` and ``s3://``.
:class:`Store` is the small set of operations the fetch needs (size of an object, stream in,
stream out with commit or abort, small whole-object writes); writes to a bucket are streamed
as resumable/multipart uploads of bounded part size and an object appears only when its
upload is committed, so an interrupted or rejected transfer never leaves an object that
looks complete, while a local file is written as ``.<name>.partial`` (hidden: builds skip
it), renamed into place on commit and otherwise kept so that a later run can resume it.
Credentials always come from the standard environment and are never passed, printed or
written by this package: for ``gs://`` Application Default Credentials
(``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default login``, or the
metadata server on Google Cloud), with ``STORAGE_EMULATOR_HOST`` pointing every client
(google-cloud-storage, smart-open, Beam) at a GCS emulator, which takes no credentials; for
``s3://`` boto3's default chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` and
``~/.aws``), with ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``) selecting an
S3-compatible server for the fetch and for Beam's own ``s3://`` filesystem alike.
:func:`redact` removes secrets from any text before it is shown or stored.
"""
from __future__ import annotations

import os
import re
import threading
import urllib.parse
from typing import BinaryIO

# Upload part size for bucket writes: bounds the memory a transfer holds (GCS needs a
# multiple of 256 KiB, S3 at least 5 MiB).
UPLOAD_PART_BYTES = 16 << 20

# Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = (
    "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID",
    "GOOGLE_OAUTH_ACCESS_TOKEN", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN",
)
_SECRET_QUERY_KEY = re.compile(r"(sig|signature|token|key|credential|secret|password|auth)", re.I)
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s'\"<>]+", re.I)


def scheme_of(location: str) -> str:
    """``gs``, ``s3`` or ``file`` for a location (a URL or a local path)."""
    if location.startswith("gs://"):
        return "gs"
    if location.startswith("s3://"):
        return "s3"
    if "://" in location and not location.startswith("file://"):
        raise ValueError(f"unsupported storage location {location!r}: use a folder, gs:// or s3://")
    return "file"


def join(base: str, *parts: str) -> str:
    """Join ``parts`` under ``base`` with ``/`` (URLs and local paths alike)."""
    base = base[len("file://"):] if base.startswith("file://") else base
    return "/".join([base.rstrip("/")] + [p.strip("/") for p in parts if p])


def _bucket_and_key(url: str) -> tuple[str, str]:
    rest = url.split("://", 1)[1]
    bucket, _, key = rest.partition("/")
    return bucket, key


def clean_url(url: str) -> str:
    """``url`` without user info and with the values of secret-looking query keys hidden."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, "***" if _SECRET_QUERY_KEY.search(k) else v) for k, v in query]
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path, urllib.parse.urlencode(query, safe="*"), ""))


def redact(text: str) -> str:
    """``text`` with URL credentials and the values of secret environment variables hidden.

    Args:
        text: any message about to be printed, logged or written (error messages of
            storage clients can quote request details).
    """
    text = _URL.sub(lambda m: clean_url(m.group(0)), str(text))
    for name in SECRET_ENV_VARS:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


# -- clients, one per process, created on first use ---------------------------------------
_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def gcs_client():
    """A google-cloud-storage client from Application Default Credentials (anonymous
    against an emulator named by ``STORAGE_EMULATOR_HOST``)."""
    with _clients_lock:
        if "gs" not in _clients:
            from google.cloud import storage

            if os.environ.get("STORAGE_EMULATOR_HOST"):
                _clients["gs"] = storage.Client.create_anonymous_client()
            else:
                _clients["gs"] = storage.Client()
        return _clients["gs"]


def s3_client():
    """A boto3 S3 client from the default credential chain and endpoint settings."""
    with _clients_lock:
        if "s3" not in _clients:
            import boto3

            _clients["s3"] = boto3.session.Session().client("s3")
        return _clients["s3"]


class ObjectWriter:
    """A streaming write to one destination, made visible only by :meth:`commit`."""

    def written_so_far(self):
        """The bytes already present (a resumed local partial file), as chunks."""
        return iter(())

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        """Finish the write; the destination now holds exactly the bytes written."""
        raise NotImplementedError

    def abort(self, keep_partial: bool) -> None:
        """Give up; nothing appears at the destination.

        Args:
            keep_partial: for a local file, keep ``.<name>.partial`` so that a later run can
                resume it (its bytes so far are good); ignored by buckets.
        """
        raise NotImplementedError


class _LocalWriter(ObjectWriter):
    def __init__(self, path: str, resume: bool, durable: bool = True):
        self._path, self._durable = path, durable
        # Hidden, so that a build reading every file of a folder never takes it for input.
        folder, name = os.path.split(path)
        self._partial = os.path.join(folder, f".{name}.partial")
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if not resume and os.path.exists(self._partial):
            os.remove(self._partial)
        self._stream = open(self._partial, "ab")

    def written_so_far(self):
        with open(self._partial, "rb") as stream:
            while chunk := stream.read(1 << 20):
                yield chunk

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    def commit(self) -> None:
        self._stream.flush()
        if self._durable:
            os.fsync(self._stream.fileno())
        self._stream.close()
        os.replace(self._partial, self._path)

    def abort(self, keep_partial: bool) -> None:
        self._stream.close()
        if not keep_partial and os.path.exists(self._partial):
            os.remove(self._partial)


class _UploadWriter(ObjectWriter):
    """A smart-open upload (GCS resumable upload or S3 multipart upload)."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, data: bytes) -> None:
        self._stream.write(data)

    def commit(self) -> None:
        self._stream.close()

    def abort(self, keep_partial: bool) -> None:
        try:
            self._stream.terminate()
        except Exception:  # the upload is abandoned either way; the store expires it
            pass


class Store:
    """Object operations on local folders, ``gs://`` and ``s3://`` with standard credentials."""

    def size(self, location: str) -> int | None:
        """Size in bytes of the object or file at ``location``; ``None`` when absent."""
        scheme = scheme_of(location)
        if scheme == "file":
            return os.path.getsize(location) if os.path.isfile(location) else None
        bucket, key = _bucket_and_key(location)
        if scheme == "gs":
            blob = gcs_client().bucket(bucket).get_blob(key)
            return None if blob is None else blob.size
        import botocore.exceptions

        try:
            return s3_client().head_object(Bucket=bucket, Key=key)["ContentLength"]
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def _transport(self, location: str) -> dict:
        scheme = scheme_of(location)
        if scheme == "gs":
            return {"client": gcs_client(), "min_part_size": UPLOAD_PART_BYTES}
        if scheme == "s3":
            return {"client": s3_client(), "min_part_size": UPLOAD_PART_BYTES}
        return {}

    def open_read(self, location: str) -> BinaryIO:
        """A binary stream over the object at ``location`` (read in bounded chunks)."""
        if scheme_of(location) == "file":
            return open(location, "rb")
        import smart_open

        return smart_open.open(location, "rb", compression="disable",
                               transport_params=self._transport(location))

    def open_write(self, location: str, resume: bool = True, durable: bool = True) -> ObjectWriter:
        """Start a streaming write to ``location``.

        Args:
            location: the final name of the file or object.
            resume: for a local file, continue ``.<name>.partial`` when one exists.
            durable: for a local file, flush it to disk on commit; a caller writing many
                small files passes ``False`` and calls :meth:`flush_local` before it
                records them (one flush for all instead of one per file).
        """
        if scheme_of(location) == "file":
            return _LocalWriter(location, resume, durable)
        import smart_open

        stream = smart_open.open(location, "wb", compression="disable",
                                 transport_params=self._transport(location))
        return _UploadWriter(stream)

    def write_bytes(self, location: str, data: bytes) -> None:
        """Replace the whole content of ``location`` in one step (small files only)."""
        if scheme_of(location) == "file":
            os.makedirs(os.path.dirname(location) or ".", exist_ok=True)
            temp = f"{location}.tmp-{os.getpid()}-{threading.get_ident()}"
            with open(temp, "wb") as stream:
                stream.write(data)
            os.replace(temp, location)
            return
        writer = self.open_write(location)
        writer.write(data)
        writer.commit()

    def sizes_below(self, folder: str) -> dict[str, int]:
        """``{location: size}`` of every file or object below ``folder``, from one listing
        (a bucket answers a listing of many objects far faster than one request each)."""
        scheme = scheme_of(folder)
        folder = folder.rstrip("/")
        if scheme == "file":
            found = {}
            for parent, _dirs, names in os.walk(folder):
                for name in names:
                    path = os.path.join(parent, name)
                    try:
                        found[path.replace(os.sep, "/")] = os.path.getsize(path)
                    except FileNotFoundError:  # another download's .partial, renamed meanwhile
                        continue
            return found
        bucket, key = _bucket_and_key(folder + "/")
        base = f"{scheme}://{bucket}/"
        if scheme == "gs":
            return {base + blob.name: blob.size for blob in gcs_client().list_blobs(bucket, prefix=key)}
        pages = s3_client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        return {base + item["Key"]: item["Size"] for page in pages for item in page.get("Contents", [])}

    @staticmethod
    def flush_local() -> None:
        """Flush every local file written without ``durable`` to disk (``os.sync``)."""
        if hasattr(os, "sync"):
            os.sync()

    def read_bytes(self, location: str) -> bytes | None:
        """The whole content of a small file, or ``None`` when it does not exist."""
        if self.size(location) is None:
            return None
        with self.open_read(location) as stream:
            return stream.read()

    def delete(self, location: str) -> None:
        """Remove ``location`` if it exists."""
        scheme = scheme_of(location)
        if scheme == "file":
            if os.path.exists(location):
                os.remove(location)
            return
        bucket, key = _bucket_and_key(location)
        if scheme == "gs":
            blob = gcs_client().bucket(bucket).get_blob(key)
            if blob is not None:
                blob.delete()
        else:
            s3_client().delete_object(Bucket=bucket, Key=key)
