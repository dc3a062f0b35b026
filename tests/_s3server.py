"""A real S3 endpoint for tests: moto's server on 127.0.0.1, spoken to through s3fs.

Registered from ``conftest.py`` with ``pytest_plugins``. The server is started once per
session on a free port; the ``s3`` fixture gives each test an empty server, fake
credentials set only for that test (``monkeypatch``), and no cached s3fs state. Nothing
here reaches AWS: every client is pointed at the local endpoint, and the instance
metadata service and the user's AWS config files are switched off.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from creevey_dask.storage import fs as storage

KEY = SECRET = "testing"
REGION = "us-east-1"


@dataclass
class S3Endpoint:
    """The per-test view of the moto server."""

    endpoint_url: str
    client: Any  # a boto3 S3 client, for setting up fixtures
    fs: Any  # the s3fs filesystem that creevey_dask uses for ``storage_options``

    @property
    def storage_options(self) -> dict[str, str]:
        """What a user passes as ``storage_options=`` to reach this endpoint."""
        return {"endpoint_url": self.endpoint_url, "key": KEY, "secret": SECRET}

    def put(self, bucket: str, key: str, data: bytes) -> None:
        """Create ``bucket`` if needed and store ``data`` at ``key``."""
        buckets = {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}
        if bucket not in buckets:
            self.client.create_bucket(Bucket=bucket)
        self.client.put_object(Bucket=bucket, Key=key, Body=data)
        self.fs.invalidate_cache()

    def get(self, bucket: str, key: str) -> bytes:
        return bytes(self.client.get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server in a thread on 127.0.0.1, on a port the OS picked."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> S3Endpoint:
    """An empty S3 endpoint and fake credentials, for this test only."""
    import boto3
    import requests
    import s3fs

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", os.fspath(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.fspath(tmp_path / "no-aws-credentials"))

    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    s3fs.S3FileSystem.clear_instance_cache()
    endpoint = S3Endpoint(
        endpoint_url=moto_endpoint,
        client=boto3.client(
            "s3",
            endpoint_url=moto_endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        ),
        fs=None,
    )
    # storage.get_fs caches filesystems by options: use (and clear) the very instance
    # that the code under test will use.
    endpoint.fs, _ = storage.get_fs("s3://", endpoint.storage_options)
    endpoint.fs.invalidate_cache()
    return endpoint
