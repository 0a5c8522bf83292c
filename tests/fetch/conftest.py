"""Loopback services for the fetch and cloud tests, started and stopped here.

* ``upstream``: an HTTP server standing in for the upstream hosts (faults on demand).
* ``gcs``: gcp-storage-emulator, a GCS JSON API server, in a subprocess on 127.0.0.1.
* ``s3``: moto in server mode, an S3 API server, in a subprocess on 127.0.0.1.

Credentials: the S3 key pair below is configured through the standard AWS variables,
and every test that writes output scans it for these values.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from tests.fetch import upstream_server

AWS_KEY_ID = "AKIAFETCHTEST7Q2X9LMN"
AWS_SECRET = "fetchTestSecret/x9Qv2LmN8rT4wZ1pK7sD3fG6hJ0"
SECRETS = (AWS_KEY_ID, AWS_SECRET)
START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not start within {START_TIMEOUT} s")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def cloud_env():
    """Standard credential and endpoint variables for both servers, restored afterwards."""
    gcs_port, s3_port = _free_port(), _free_port()
    values = {
        "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{gcs_port}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_GCE_CHECK": "true",
        "GCE_METADATA_HOST": "127.0.0.1:9",
        "GOOGLE_CLOUD_PROJECT": "test-project",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    yield {"gcs_port": gcs_port, "s3_port": s3_port}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def gcs(cloud_env):
    """gcp-storage-emulator on 127.0.0.1; yields a google-cloud-storage client."""
    port = cloud_env["gcs_port"]
    process = subprocess.Popen(
        [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1",
         "--port", str(port), "--in-memory"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, "gcp-storage-emulator")
        from google.cloud import storage

        yield storage.Client.create_anonymous_client()
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def s3(cloud_env):
    """moto's S3 server on 127.0.0.1; yields a boto3 S3 client."""
    port = cloud_env["s3_port"]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, process, "moto server")
        import boto3

        yield boto3.session.Session().client("s3")
    finally:
        _stop(process)


@pytest.fixture
def upstream():
    """A fresh loopback upstream host for one test."""
    server = upstream_server.start(upstream_server.Upstream())
    yield server
    upstream_server.stop(server)
