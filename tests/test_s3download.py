"""S3Downloader against a real S3 endpoint (moto's server) through s3fs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.callbacks import Callback

from creevey_dask import CredentialsError, MissingDataError, S3Downloader

DATA = bytes(range(256)) * 4096  # 1 MiB


class Interrupt(Callback):
    """Stops a transfer, as Ctrl-C would, once ``after`` bytes have arrived."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def relative_update(self, inc: int = 1) -> None:
        super().relative_update(inc)
        if self.value >= self.after:
            raise KeyboardInterrupt("interrupted by the test")


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_downloads_to_raw_under_the_keys_basename(s3: Any, tmp_path: Path) -> None:
    s3.put("bucket", "some/prefix/archive.tar.gz", DATA)
    downloader = S3Downloader(
        "bucket", "some/prefix/archive.tar.gz", str(tmp_path / "ds"), s3.storage_options
    )
    assert downloader.dest_path == f"{tmp_path}/ds/raw/archive.tar.gz"

    assert downloader.download() == downloader.dest_path

    assert (tmp_path / "ds/raw/archive.tar.gz").read_bytes() == DATA
    assert listing(tmp_path / "ds") == ["raw", "raw/archive.tar.gz"]


def test_chunks_report_progress(s3: Any, tmp_path: Path) -> None:
    s3.put("bucket", "blob.bin", DATA)

    class Recorder(Callback):
        def __init__(self) -> None:
            super().__init__()
            self.updates: list[int] = []

        def relative_update(self, inc: int = 1) -> None:
            self.updates.append(inc)
            super().relative_update(inc)

    recorder = Recorder()
    S3Downloader(
        "bucket",
        "blob.bin",
        str(tmp_path),
        s3.storage_options,
        progress=recorder,
        chunk_size=256 * 1024,
    ).download()
    assert recorder.size == len(DATA)
    assert recorder.updates == [256 * 1024] * 4


def test_interrupted_download_leaves_nothing(s3: Any, tmp_path: Path) -> None:
    s3.put("bucket", "blob.bin", DATA)
    downloader = S3Downloader(
        "bucket",
        "blob.bin",
        str(tmp_path / "ds"),
        s3.storage_options,
        progress=Interrupt(after=300 * 1024),
        chunk_size=128 * 1024,
    )
    with pytest.raises(KeyboardInterrupt):
        downloader.download()
    assert downloader.progress.value < len(DATA)  # it really stopped midway
    assert listing(tmp_path / "ds") == ["raw"]  # no final file, no temporary file

    downloader.progress = False
    downloader.download()
    assert (tmp_path / "ds/raw/blob.bin").read_bytes() == DATA


def test_downloads_to_memory(s3: Any, memfs: fsspec.AbstractFileSystem) -> None:
    s3.put("bucket", "a/blob.bin", DATA)
    path = S3Downloader(
        "bucket", "a/blob.bin", "memory://ds", s3.storage_options, progress=False
    ).download()
    assert path == "memory://ds/raw/blob.bin"
    assert memfs.cat_file("/ds/raw/blob.bin") == DATA
    assert memfs.find("/ds") == ["/ds/raw/blob.bin"]


def test_interrupted_download_to_memory_leaves_nothing(
    s3: Any, memfs: fsspec.AbstractFileSystem
) -> None:
    s3.put("bucket", "blob.bin", DATA)
    with pytest.raises(KeyboardInterrupt):
        S3Downloader(
            "bucket",
            "blob.bin",
            "memory://ds",
            s3.storage_options,
            progress=Interrupt(after=1),
            chunk_size=64 * 1024,
        ).download()
    assert memfs.find("/ds") == []


def test_downloads_to_another_bucket(s3: Any) -> None:
    s3.put("source", "blob.bin", DATA)
    s3.client.create_bucket(Bucket="datasets")
    path = S3Downloader(
        "source", "blob.bin", "s3://datasets/pets", s3.storage_options, progress=False
    ).download()
    assert path == "s3://datasets/pets/raw/blob.bin"
    assert s3.get("datasets", "pets/raw/blob.bin") == DATA
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket="datasets")["Contents"]]
    assert keys == ["pets/raw/blob.bin"]


def test_missing_key_names_bucket_and_key(s3: Any, tmp_path: Path) -> None:
    s3.put("bucket", "present.tar", b"x")
    with pytest.raises(FileNotFoundError, match=r"bucket 'bucket', key 'absent\.tar'") as info:
        S3Downloader("bucket", "absent.tar", str(tmp_path), s3.storage_options).download()
    assert isinstance(info.value, MissingDataError)
    assert listing(tmp_path) == []


def test_missing_bucket_names_bucket_and_key(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"S3 bucket 'no-such-bucket' does not exist.*key 'data\.tar'"
    ):
        S3Downloader("no-such-bucket", "data.tar", str(tmp_path), s3.storage_options).download()
    assert listing(tmp_path) == []


def test_key_that_is_a_folder(s3: Any, tmp_path: Path) -> None:
    s3.put("bucket", "folder/inside.bin", b"x")
    with pytest.raises(MissingDataError, match="is a folder"):
        S3Downloader("bucket", "folder", str(tmp_path), s3.storage_options).download()


@pytest.fixture
def s3_with_auth(s3: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Switch the moto server to checking credentials; return a valid user's keys."""
    import boto3
    from moto import settings

    iam = boto3.client(
        "iam",
        endpoint_url=s3.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    iam.create_user(UserName="reader")
    iam.put_user_policy(
        UserName="reader",
        PolicyName="read-all",
        PolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
        '"Action": "s3:*", "Resource": "*"}]}',
    )
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    s3.put("bucket", "blob.bin", DATA)
    # from here on the (in-process) server authenticates every request
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def test_valid_credentials_work_when_the_server_checks(
    s3: Any, s3_with_auth: dict[str, str], tmp_path: Path
) -> None:
    options = {"endpoint_url": s3.endpoint_url, **s3_with_auth}
    S3Downloader("bucket", "blob.bin", str(tmp_path), options, progress=False).download()
    assert (tmp_path / "raw/blob.bin").read_bytes() == DATA


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param({"key": "AKIANOSUCHKEY0000000", "secret": "whatever"}, id="unknown key"),
        pytest.param({"secret": "not-the-secret"}, id="wrong secret"),
    ],
)
def test_bad_credentials_are_reported_as_such(
    s3: Any, s3_with_auth: dict[str, str], tmp_path: Path, wrong: dict[str, str]
) -> None:
    options = {"endpoint_url": s3.endpoint_url, **s3_with_auth, **wrong}
    with pytest.raises(PermissionError, match="credentials were rejected") as info:
        S3Downloader("bucket", "blob.bin", str(tmp_path), options, progress=False).download()
    assert isinstance(info.value, CredentialsError)
    assert "bucket 'bucket', key 'blob.bin'" in str(info.value)
    assert not os.path.exists(tmp_path / "raw/blob.bin")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bare bucket name"):
        S3Downloader("s3://bucket", "key", str(tmp_path))
    with pytest.raises(ValueError, match="s3_key must be a non-empty string"):
        S3Downloader("bucket", "", str(tmp_path))
    with pytest.raises(ValueError, match="must name an object"):
        S3Downloader("bucket", "folder/", str(tmp_path))
    with pytest.raises(ValueError, match="chunk_size"):
        S3Downloader("bucket", "key", str(tmp_path), chunk_size=0)
    with pytest.raises(ValueError, match="unknown storage protocol 'nosuchproto'"):
        S3Downloader("bucket", "key", "nosuchproto://somewhere")


def test_no_credentials_at_all(
    s3: Any, s3_with_auth: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    options = {"endpoint_url": s3.endpoint_url}
    with pytest.raises(PermissionError, match="no usable S3 credentials") as info:
        S3Downloader("bucket", "blob.bin", str(tmp_path), options, progress=False).download()
    assert isinstance(info.value, CredentialsError)


def test_unwritable_destination_is_not_blamed_on_s3(s3: Any, tmp_path: Path) -> None:
    s3.put("bucket", "blob.bin", DATA)
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw").chmod(0o500)
    if os.access(tmp_path / "raw", os.W_OK):  # pragma: no cover - running as root
        (tmp_path / "raw").chmod(0o700)
        pytest.skip("permissions are not enforced for this user")
    try:
        with pytest.raises(PermissionError) as info:
            S3Downloader("bucket", "blob.bin", str(tmp_path), s3.storage_options).download()
        assert not isinstance(info.value, CredentialsError)
    finally:
        (tmp_path / "raw").chmod(0o700)
