"""Every output proves its own source: engine-owned commits, proofs on the outputs.

Real parts only: files on disk (ext4 with user xattrs, and a ramfs mount without them),
``memory://``, a moto S3 server spoken to through s3fs (requests counted as the client
sends them), two real processes and a two-worker ``LocalCluster`` racing on one folder.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
import pytest
from PIL import Image

import creevey_dask
from creevey_dask import Pipeline, download, load_image
from creevey_dask.resize import resize as resize_frame
from creevey_dask.storage import _records, provenance
from creevey_dask.storage import fs as storage
from creevey_dask.storage.naming import UrlNamer, disambiguate, url_hash
from creevey_dask.testing import ImageServer
from tests.conftest import make_photo

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def _photos(folder: Path, n: int, prefix: str = "p") -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{prefix}{i:03d}.jpg"
        make_photo(40 + i, 30, seed=i).save(path, quality=90)
        paths.append(str(path))
    return paths


def _same_pixels(source: str, output: bytes | str, size: tuple[int, int] | None = None) -> None:
    """The output decodes and is ``source``'s image (resized to ``size`` if given)."""
    with Image.open(source) as want_im:
        want = want_im.convert("RGB")
    if size is not None:
        want = want.resize(size, Image.Resampling.LANCZOS)
    stream = io.BytesIO(output) if isinstance(output, bytes) else output
    with Image.open(stream) as got_im:
        got = got_im.convert("RGB")
    assert got.size == want.size
    diff = sum(abs(a - b) for a, b in zip(got.tobytes(), want.tobytes(), strict=True))
    assert diff / len(want.tobytes()) < 12  # the same picture (JPEG re-encode noise only)


def resize(sources, outdir: str, **kwargs) -> pd.DataFrame:
    """:func:`creevey_dask.resize.resize` over a table of ``sources`` (column ``inpath``)."""
    if isinstance(sources, list):
        sources = pd.DataFrame({"inpath": sources})
    return resize_frame(sources, outdir, "inpath", **kwargs)


def _image_folder_walk(root: Path) -> list[str]:
    """What torchvision's ``ImageFolder`` finds: files with an image extension, any depth."""
    return sorted(
        os.path.join(folder, name)
        for folder, _, names in os.walk(root, followlinks=True)
        for name in names
        if name.lower().endswith(IMAGE_EXTS)
    )


# --------------------------------------------------------------- nothing beside the outputs


def test_a_download_folder_holds_only_the_images(
    image_server: ImageServer, tmp_path: Path, memfs
) -> None:
    urls = [image_server.url(f"/img/many/{i:03d}.jpg") for i in range(12)]
    outdir = tmp_path / "out"
    result = download(urls, str(outdir), format="jpeg", progress=False)
    assert set(result.status) == {"ok"}
    names = sorted(f"{i:03d}.jpg" for i in range(12))
    assert sorted(os.listdir(outdir)) == names  # no claims folder, no temporaries
    assert sorted(p.name for p in outdir.rglob("*.jpg")) == names
    assert sorted(p.name for p in outdir.rglob("*")) == names
    assert _image_folder_walk(outdir) == sorted(str(outdir / n) for n in names)
    for name in names:  # each file is its own row's image, with its proof on it
        path = outdir / name
        served = image_server.files[f"many/{name}"]
        with Image.open(path) as got, Image.open(io.BytesIO(served)) as want:
            assert got.size == want.size
        proof = os.getxattr(path, provenance.XATTR_NAME).decode()
        url = urls[int(name[:3])]
        st = path.stat()
        assert proof == f"{url_hash(url)} {st.st_size} {st.st_mtime_ns}"
    # the original creevey's README: resize every entry of the download folder
    entries = [str(outdir / n) for n in os.listdir(outdir)]
    again = resize(entries, str(tmp_path / "small"), shape=(8, 8), progress=False)
    assert set(again.status) == {"ok"}

    mem = download(urls[:5], "memory://dl/out", format="png", progress=False)
    assert set(mem.status) == {"ok"}
    assert sorted(memfs.ls("/dl/out", detail=False)) == sorted(
        f"/dl/out/{i:03d}.png" for i in range(5)
    )
    rerun = download(urls[:5], "memory://dl/out", format="png", progress=False)
    assert set(rerun.status) == {"skipped"}


# ----------------------------------------------------------- files without a valid proof


def test_files_without_a_valid_proof_are_never_done_and_never_overwritten(
    tmp_path: Path,
) -> None:
    sources = _photos(tmp_path / "src", 3)
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "p000.png").write_bytes(b"another tool's file")  # no proof at all
    first = resize(sources, str(outdir), shape=(10, 10), format="png", progress=False)
    assert first.status.tolist() == ["ok"] * 3
    assert first.outpath[0] == disambiguate(str(outdir / "p000.png"), sources[0])
    assert (outdir / "p000.png").read_bytes() == b"another tool's file"
    # a committed output that changed size since its commit no longer proves itself
    with open(outdir / "p001.png", "ab") as f:
        f.write(b"appended later")
    second = resize(sources, str(outdir), shape=(10, 10), format="png", progress=False)
    assert second.status.tolist() == ["skipped", "ok", "skipped"]
    assert second.outpath[1] == disambiguate(str(outdir / "p001.png"), sources[1])
    assert (outdir / "p001.png").read_bytes().endswith(b"appended later")  # left alone
    for source, outpath in zip(second.inpath, second.outpath, strict=True):
        _same_pixels(source, outpath, (10, 10))
    # skip_existing=False rewrites a row's own output only
    third = resize(
        sources, str(outdir), shape=(10, 10), format="png", skip_existing=False, progress=False
    )
    assert third.outpath.tolist() == second.outpath.tolist()
    assert (outdir / "p000.png").read_bytes() == b"another tool's file"


# -------------------------------------------------------------- a custom writer's commit


def test_a_custom_writer_gets_a_temporary_with_the_extension(tmp_path: Path, s3) -> None:
    sources = _photos(tmp_path / "src", 3)
    seen: list[str] = []

    def writer(image: Image.Image, path: str) -> None:
        seen.append(path)
        image.save(path)  # the format from the extension, as the original creevey did

    pipeline = Pipeline(load_image, write_func=writer)
    out = tmp_path / "out"
    result = pipeline.run(sources, lambda s: str(out / (Path(s).stem + ".webp")), progress=False)
    assert set(result.status) == {"ok"}
    assert all(p.endswith(".webp") and storage.is_temporary(os.path.basename(p)) for p in seen)
    assert sorted(os.listdir(out)) == ["p000.webp", "p001.webp", "p002.webp"]
    for source, outpath in zip(result.inpath, result.outpath, strict=True):
        with Image.open(outpath) as im:
            assert im.format == "WEBP"
        _same_pixels(source, outpath)

    s3.client.create_bucket(Bucket="custom")
    remote = pipeline.run(
        sources,
        lambda s: f"s3://custom/out/{Path(s).stem}.png",
        progress=False,
        options=creevey_dask.RunOptions(storage_options=s3.storage_options),
    )
    assert set(remote.status) == {"ok"}
    keys = sorted(o["Key"] for o in s3.client.list_objects_v2(Bucket="custom")["Contents"])
    assert keys == ["out/p000.png", "out/p001.png", "out/p002.png"]
    for source, key in zip(sources, keys, strict=True):
        head = s3.client.head_object(Bucket="custom", Key=key)
        assert head["Metadata"]["creevey-source"] == f"{url_hash(source)} {head['ContentLength']}"
        _same_pixels(source, s3.get("custom", key))
    assert not [p for p in seen if os.path.exists(p)]  # every temporary is gone


# ------------------------------------------------------------------------------ S3 costs


class _Requests:
    """The requests an s3fs client sends, by (method, kind), counted as they go out."""

    def __init__(self, fs) -> None:
        self.counts: dict[str, int] = {}
        fs.call_s3("list_buckets")  # connect, so that the client exists
        fs.s3.meta.events.register("before-send.s3", self._count)

    def _count(self, request, **kwargs) -> None:
        method = request.method
        if method == "GET" and ("list-type=" in request.url or "?prefix=" in request.url):
            method = "LIST"
        self.counts[method] = self.counts.get(method, 0) + 1

    def take(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts


def test_s3_costs_one_put_per_new_file_and_one_head_per_skip(tmp_path: Path, s3) -> None:
    n = 24
    sources = _photos(tmp_path / "src", n)
    s3.client.create_bucket(Bucket="costs")
    fs, _ = storage.get_fs("s3://costs/out", s3.storage_options)
    requests = _Requests(fs)

    def run() -> pd.DataFrame:
        return resize(
            sources,
            "s3://costs/out",
            progress=False,
            shape=(16, 16),
            options=creevey_dask.RunOptions(storage_options=s3.storage_options, npartitions=2),
        )

    first = run()
    assert set(first.status) == {"ok"}
    made = requests.take()
    assert made.get("PUT") == n  # one PUT per new object ...
    assert made.get("HEAD", 0) == 0  # ... no HEAD: the folder was listed once per partition
    assert made.get("LIST", 0) <= 2
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket="costs")["Contents"]]
    assert len(keys) == n  # nothing beside the outputs

    second = run()
    assert set(second.status) == {"skipped"}
    again = requests.take()
    assert again.get("PUT", 0) == 0
    assert again.get("HEAD", 0) <= n
    assert again.get("LIST", 0) <= 2
    assert set(again) <= {"HEAD", "LIST"}
    for source, outpath in zip(second.inpath, second.outpath, strict=True):
        _same_pixels(source, s3.get("costs", outpath.removeprefix("s3://costs/")), (16, 16))

    # another tool's object at a name: untouched, and the row takes the hashed name
    s3.client.put_object(Bucket="costs", Key="other/p000.png", Body=b"not ours")
    fs.invalidate_cache()
    third = resize(
        sources[:1],
        "s3://costs/other",
        format="png",
        progress=False,
        shape=(16, 16),
        options=creevey_dask.RunOptions(storage_options=s3.storage_options),
    )
    assert third.status.tolist() == ["ok"]
    assert third.outpath[0] == disambiguate("s3://costs/other/p000.png", sources[0])
    assert s3.get("costs", "other/p000.png") == b"not ours"


def test_s3_commits_are_exclusive(tmp_path: Path, s3) -> None:
    """The loser of a race for a key finds the winner's proof; nothing is overwritten."""
    s3.client.create_bucket(Bucket="race")
    payload = provenance.BytesPayload(b"first")
    path = "s3://race/x.png"
    so = s3.storage_options
    assert payload.commit(path, "d1", replace=False, storage_options=so)
    assert not provenance.BytesPayload(b"second").commit(
        path, "d2", replace=False, storage_options=so
    )
    assert s3.get("race", "x.png") == b"first"
    assert provenance.inspect(path, so) == provenance.Entry("file", "d1", 5)


# ----------------------------------------------------------- a filesystem without xattrs


@pytest.fixture
def ramfs(tmp_path: Path) -> Iterator[Path]:
    """A real ramfs mount (no user xattrs); skipped where mounting is not allowed."""
    mount = tmp_path / "ramfs"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "ramfs", "ramfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a ramfs here: {done.stderr.strip()}")
    try:
        probe = mount / "probe"
        probe.write_bytes(b"")
        with pytest.raises(OSError, match="not supported"):
            os.setxattr(probe, provenance.XATTR_NAME, b"x")
        probe.unlink()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_without_xattrs_the_records_fallback_keeps_every_promise(
    ramfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CREEVEY_DASK_CACHE", str(cache))
    _records._forget_records()
    sources = _photos(tmp_path / "src", 6)
    outdir = ramfs / "out"
    outdir.mkdir()
    (outdir / "p005.png").write_bytes(b"not ours")  # no proof, no record
    first = resize(sources, str(outdir), shape=(12, 12), format="png", progress=False)
    assert set(first.status) == {"ok"}
    assert first.outpath[5] == disambiguate(str(outdir / "p005.png"), sources[5])
    assert len(os.listdir(outdir)) == 7  # the six outputs and the foreign file: nothing else
    assert all(not storage.is_temporary(n) for n in os.listdir(outdir))
    assert list(cache.rglob("*.tsv"))  # the records live outside the output folder

    second = resize(sources, str(outdir), shape=(12, 12), format="png", progress=False)
    assert set(second.status) == {"skipped"}
    assert second.outpath.tolist() == first.outpath.tolist()
    # another process reads the records from the files, not from this one's memory
    code = textwrap.dedent(
        f"""
        import pandas as pd
        from creevey_dask.resize import resize
        res = resize(pd.DataFrame({{"p": {sources!r}}}), {str(outdir)!r}, "p", shape=(12, 12),
                     format="png", progress=False)
        print(",".join(res.status.astype(str)))
        """
    )
    env = {**os.environ, "CREEVEY_DASK_CACHE": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == ",".join(["skipped"] * 6)
    # a committed file that changed no longer proves itself: a new name, never a skip
    with open(first.outpath[0], "ab") as f:
        f.write(b"x")
    third = resize(sources[:1], str(outdir), shape=(12, 12), format="png", progress=False)
    assert third.status.tolist() == ["ok"]
    assert third.outpath[0] == disambiguate(first.outpath[0], sources[0])
    for source, outpath in zip(second.inpath, second.outpath, strict=True):
        _same_pixels(source, outpath, (12, 12))


# ----------------------------------------------------------- two writers on one folder

_RACER = """
import sys, time
import pandas as pd
from creevey_dask import RunOptions
from creevey_dask.resize import resize
sources, outdir, start = sys.argv[1].split(","), sys.argv[2], float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
res = resize(pd.DataFrame({"path": sources}), outdir, "path", shape=(16, 16),
                format="png", progress=False, options=RunOptions(n_jobs=4))
print(",".join(res.status.astype(str)))
print(",".join(res.outpath.astype(str)))
"""


def test_two_processes_on_one_folder_write_each_source_once(tmp_path: Path) -> None:
    import time

    # the same names from two folders: each process's table gives the other source the
    # plain name, so they race for it
    a = _photos(tmp_path / "a", 20, prefix="x")
    b = _photos(tmp_path / "b", 20, prefix="x")
    outdir = tmp_path / "out"
    start = time.time() + 3
    tables = [",".join(a + b), ",".join(b + a)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, table, str(outdir), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for table in tables
    ]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=240)
        assert proc.returncode == 0, stderr
        outs.append(stdout.split("\n"))
    sources = a + b
    files = sorted(os.listdir(outdir))
    assert len(files) == len(sources)  # each source written exactly once
    assert not [n for n in files if storage.is_temporary(n)]
    by_source: dict[str, set[str]] = {}
    for (statuses, outpaths, _), table in zip(outs, tables, strict=True):
        assert set(statuses.split(",")) <= {"ok", "skipped"}
        for source, outpath in zip(table.split(","), outpaths.split(","), strict=True):
            by_source.setdefault(source, set()).add(outpath)
    assert all(len(paths) == 1 for paths in by_source.values())  # both saw the same file
    for source, (outpath,) in by_source.items():
        _same_pixels(source, outpath, (16, 16))


@pytest.mark.cluster
def test_two_runs_on_a_cluster_write_each_source_once(local_cluster_client, tmp_path) -> None:
    client = local_cluster_client
    sources = _photos(tmp_path / "src", 30)
    outdir = tmp_path / "out"
    table = pd.DataFrame({"path": sources})
    lazies = [
        resize_frame(
            dd.from_pandas(frame, npartitions=3),
            str(outdir),
            "path",
            shape=(16, 16),
            format="png",
            options=creevey_dask.RunOptions(n_jobs=4),
        )
        for frame in (table, table.iloc[::-1])
    ]
    results = [f.result() for f in client.compute(lazies)]
    assert len(os.listdir(outdir)) == len(sources)
    for result in results:
        assert set(result.status) <= {"ok", "skipped"}
        assert sorted(result.outpath) == sorted(str(outdir / f"p{i:03d}.png") for i in range(30))
    ok = sum(int((r.status == "ok").sum()) for r in results)
    assert ok == len(sources)  # every source written once, by one of the two runs
    for source in sources:
        _same_pixels(source, str(outdir / (Path(source).stem + ".png")), (16, 16))


def test_a_failed_remote_writer_leaves_nothing(tmp_path: Path, s3) -> None:
    s3.client.create_bucket(Bucket="fail")
    sources = _photos(tmp_path / "src", 2)

    def writer(image: Image.Image, path: str) -> None:
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError(f"codec error {uuid.uuid4().hex[:4]}")

    result = Pipeline(load_image, write_func=writer).run(
        sources,
        lambda s: f"s3://fail/{Path(s).stem}.png",
        progress=False,
        options=creevey_dask.RunOptions(storage_options=s3.storage_options),
    )
    assert set(result.status) == {"error"}
    assert result.error.str.startswith("OSError: codec error").all()
    assert "Contents" not in s3.client.list_objects_v2(Bucket="fail")


def test_writers_that_write_nothing_a_folder_or_a_link(tmp_path: Path) -> None:
    sources = _photos(tmp_path / "src", 2)
    outdir = tmp_path / "out"
    target = tmp_path / "elsewhere.png"
    target.write_bytes(b"not an output")

    def nothing(image: Image.Image, path: str) -> None:
        return None

    def empty(image: Image.Image, path: str) -> None:
        open(path, "wb").close()

    def folder(image: Image.Image, path: str) -> None:
        os.mkdir(path)

    def link(image: Image.Image, path: str) -> None:
        os.symlink(target, path)

    namer = lambda s: str(outdir / (Path(s).stem + ".png"))  # noqa: E731
    quiet = Pipeline(load_image, write_func=nothing).run(sources, namer, progress=False)
    assert quiet.status.tolist() == ["ok", "ok"]  # a run kept for its reporters
    assert quiet.outpath.isna().all()  # ... names no file
    for writer, message in (
        (folder, "write_func left something other than a file"),
        (link, "write_func left something other than a file"),
        (empty, "write_func wrote an empty file"),
    ):
        result = Pipeline(load_image, write_func=writer).run(sources, namer, progress=False)
        assert result.status.tolist() == ["error", "error"]
        assert result.error.str.contains(message).all()
        assert os.listdir(outdir) == []  # nothing left behind, no folder, no link
    assert target.read_bytes() == b"not an output"


def test_an_output_changed_in_place_proves_nothing_even_at_a_hashed_name(tmp_path: Path) -> None:
    """Truncated at a hashed name, or another image of the same size copied over it
    (``cp`` keeps the inode and its xattr): never skipped, and the row writes again."""
    sources = _photos(tmp_path / "src", 3)
    outdir = tmp_path / "out"
    hashed_names = UrlNamer(str(outdir), ".bmp", hashed=True)
    first = resize(sources, str(outdir), shape=(12, 12), outpath_func=hashed_names)
    hashed = [Path(p) for p in first.outpath]
    with open(hashed[0], "r+b") as f:  # truncated in place: xattr kept, size wrong
        f.truncate(20)
    same_size = hashed[2].read_bytes()  # the same size (BMP of the same shape) ...
    with open(hashed[1], "r+b") as f:  # ... written over another row's output
        f.write(same_size)
    second = resize(sources, str(outdir), shape=(12, 12), outpath_func=hashed_names)
    assert second.status.tolist() == ["ok", "ok", "skipped"]  # rewritten, not taken for done
    for source, outpath in zip(second.inpath, second.outpath, strict=True):
        _same_pixels(source, outpath, (12, 12))


def test_a_writer_that_makes_its_file_read_only_still_proves_it() -> None:
    import shutil
    import tempfile

    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if os.geteuid() != 0 or subprocess.run([*as_nobody, "true"], check=False).returncode:
        pytest.skip("needs root to run the writer as another user (root bypasses EACCES)")
    tmp_path = Path(tempfile.mkdtemp(prefix="creevey-readonly-"))  # reachable by nobody
    os.chmod(tmp_path, 0o777)
    try:
        _run_read_only_writer(tmp_path, as_nobody)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


def _run_read_only_writer(tmp_path: Path, as_nobody: list[str]) -> None:
    code = textwrap.dedent(
        f"""
        import os, sys
        from pathlib import Path
        from creevey_dask import Pipeline, load_image
        def writer(image, path):
            image.save(path)
            os.chmod(path, 0o444)  # protect the dataset
        sources = sys.argv[1:]
        out = {str(tmp_path / "out")!r}
        namer = lambda s: out + "/" + Path(s).stem + ".png"
        runs = [Pipeline(load_image, write_func=writer).run(sources, namer, progress=False)
                for _ in range(2)]
        print(",".join(runs[0].status.astype(str)), ",".join(runs[1].status.astype(str)))
        print(sorted(os.listdir(out)))
        """
    )
    sources = _photos(tmp_path / "src", 2)
    os.chmod(tmp_path / "src", 0o755)
    done = subprocess.run(
        [*as_nobody, sys.executable, "-c", code, *sources],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    statuses, listing = done.stdout.splitlines()
    assert statuses == "ok,ok skipped,skipped"
    assert listing == "['p000.png', 'p001.png']"
