"""TarfileExtractor: every compression, every kind of hostile member, corrupt archives."""

from __future__ import annotations

import io
import os
import re
import tarfile
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.callbacks import Callback

import creevey_dask.datasets.tarfiles as tarfiles
from creevey_dask import ArchiveError, TarfileExtractor, UnsafeArchiveError

COMPRESSIONS = {".tar": "w", ".tar.gz": "w:gz", ".tar.bz2": "w:bz2", ".tar.xz": "w:xz"}


def file_member(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    return info, data


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info, None


def make_tar(members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def good_members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [
        special_member("images", tarfile.DIRTYPE),
        file_member("images/cat.jpg", b"cat" * 100),
        file_member("images/sub/dog.png", b"dog" * 50),
        special_member("images/latest.jpg", tarfile.SYMTYPE, "cat.jpg"),
        special_member("images/cat-again.jpg", tarfile.LNKTYPE, "images/cat.jpg"),
        file_member("README", b"hello"),
    ]


def listing(folder: Path) -> list[str]:
    """Every entry below ``folder`` (hidden ones too), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """A folder for the archive, inside another so that escapes can be seen."""
    folder = tmp_path / "dest"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("suffix", list(COMPRESSIONS))
def test_extracts_every_compression_next_to_the_archive(dest: Path, suffix: str) -> None:
    archive = dest / f"data{suffix}"
    archive.write_bytes(make_tar(good_members(), COMPRESSIONS[suffix]))

    paths = TarfileExtractor(archive, progress=False).extract()

    assert paths == sorted(
        str(dest / name)
        for name in (
            "README",
            "images/cat-again.jpg",
            "images/cat.jpg",
            "images/latest.jpg",
            "images/sub/dog.png",
        )
    )
    assert (dest / "images/cat.jpg").read_bytes() == b"cat" * 100
    assert (dest / "images/sub/dog.png").read_bytes() == b"dog" * 50
    assert (dest / "README").read_bytes() == b"hello"
    assert os.readlink(dest / "images/latest.jpg") == "cat.jpg"
    assert (dest / "images/cat-again.jpg").read_bytes() == b"cat" * 100
    # nothing else: no temporary folder left behind, the archive itself kept
    assert listing(dest) == sorted(
        [
            f"data{suffix}",
            "README",
            "images",
            "images/cat-again.jpg",
            "images/cat.jpg",
            "images/latest.jpg",
            "images/sub",
            "images/sub/dog.png",
        ]
    )


def test_short_suffixes_and_file_urls_are_accepted(dest: Path) -> None:
    archive = dest / "data.tgz"
    archive.write_bytes(make_tar([file_member("a.txt", b"a")], "w:gz"))
    paths = TarfileExtractor(f"file://{archive}", progress=False).extract()
    assert paths == [str(dest / "a.txt")]


MALICIOUS = {
    "absolute path": ([file_member("/tmp/creevey-evil.txt", b"x")], "/tmp/creevey-evil.txt"),
    "dot-dot": ([file_member("../evil.txt", b"x")], "../evil.txt"),
    "dot-dot inside": ([file_member("a/../../evil.txt", b"x")], "a/../../evil.txt"),
    "symlink out": (
        [special_member("link", tarfile.SYMTYPE, "../outside.txt")],
        "link",
    ),
    "symlink absolute": (
        [special_member("passwd", tarfile.SYMTYPE, "/etc/passwd")],
        "passwd",
    ),
    "symlink deep out": (
        [special_member("a/b/link", tarfile.SYMTYPE, "../../../outside")],
        "a/b/link",
    ),
    "hardlink out": (
        [special_member("hard", tarfile.LNKTYPE, "../outside.txt")],
        "hard",
    ),
    "hardlink absolute": (
        [special_member("hard", tarfile.LNKTYPE, "/etc/passwd")],
        "hard",
    ),
    "char device": ([special_member("null", tarfile.CHRTYPE)], "null"),
    "block device": ([special_member("disk", tarfile.BLKTYPE)], "disk"),
    "fifo": ([special_member("pipe", tarfile.FIFOTYPE)], "pipe"),
    "member beneath a symlink": (
        [
            special_member("here", tarfile.SYMTYPE, "."),
            file_member("here/evil.txt", b"x"),
        ],
        "here/evil.txt",
    ),
}


@pytest.mark.parametrize("kind", list(MALICIOUS))
def test_refuses_malicious_members_and_extracts_nothing(dest: Path, kind: str) -> None:
    bad_members, bad_name = MALICIOUS[kind]
    # good members first: a refused archive must not leave them half-extracted
    archive = dest / "evil.tar.gz"
    archive.write_bytes(make_tar([*good_members(), *bad_members], "w:gz"))
    outside_before = listing(dest.parent)

    with pytest.raises(UnsafeArchiveError, match=re.escape(f"refused archive member {bad_name!r}")):
        TarfileExtractor(archive, progress=False).extract()

    assert listing(dest) == ["evil.tar.gz"]
    assert listing(dest.parent) == outside_before
    assert not os.path.lexists("/tmp/creevey-evil.txt")


def test_unsafe_error_is_a_value_error(dest: Path) -> None:
    archive = dest / "evil.tar"
    archive.write_bytes(make_tar([file_member("../x", b"x")]))
    with pytest.raises(ValueError, match=r"'\.\.' path component"):
        TarfileExtractor(archive, progress=False).extract()


def test_pythons_data_filter_is_a_second_layer(dest: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With our own member checks switched off, filter="data" still refuses escapes."""
    if not hasattr(tarfile, "data_filter"):  # pragma: no cover - Python without filters
        pytest.skip("this Python has no tarfile extraction filters")
    monkeypatch.setattr(tarfiles, "check_member", lambda member, symlinks=(): None)
    archive = dest / "evil.tar"
    archive.write_bytes(
        make_tar([file_member("ok.txt", b"ok"), special_member("link", tarfile.SYMTYPE, "../x")])
    )
    with pytest.raises(UnsafeArchiveError, match="refused archive member 'link'"):
        TarfileExtractor(archive, progress=False).extract()
    assert listing(dest) == ["evil.tar"]


def corrupt_archives() -> dict[str, tuple[str, bytes]]:
    big = [file_member(f"f{i}.bin", os.urandom(20_000)) for i in range(3)]
    plain = make_tar(big, "w")
    cases = {
        "not an archive": (".tar.gz", b"this is not a tar archive at all" * 10),
        "garbage .tar": (".tar", os.urandom(5000)),
        # cut inside the last member's data
        "truncated .tar": (".tar", plain[: 512 * 3 + 2 * (512 + 20_000) + 5_000]),
    }
    for suffix, mode in COMPRESSIONS.items():
        if suffix != ".tar":
            data = make_tar(big, mode)
            cases[f"truncated {suffix}"] = (suffix, data[: len(data) // 2])
    return cases


@pytest.mark.parametrize("case", list(corrupt_archives()))
def test_corrupt_or_truncated_archive_is_an_error_and_extracts_nothing(
    dest: Path, case: str
) -> None:
    suffix, data = corrupt_archives()[case]
    archive = dest / f"broken{suffix}"
    archive.write_bytes(data)
    with pytest.raises(ArchiveError, match="corrupt, truncated or not a tar archive") as info:
        TarfileExtractor(archive, progress=False).extract()
    assert "\n" not in str(info.value)
    assert str(archive) in str(info.value)
    assert listing(dest) == [f"broken{suffix}"]


def test_hard_link_to_a_missing_member_is_an_error(dest: Path) -> None:
    archive = dest / "data.tar"
    archive.write_bytes(
        make_tar([file_member("ok", b"1"), special_member("h", tarfile.LNKTYPE, "missing")])
    )
    with pytest.raises(ArchiveError, match="'h' is a hard link to 'missing', which is not"):
        TarfileExtractor(archive, progress=False).extract()
    assert listing(dest) == ["data.tar"]


def test_existing_entries_are_not_overwritten(dest: Path) -> None:
    archive = dest / "data.tar"
    archive.write_bytes(make_tar(good_members()))
    (dest / "README").write_bytes(b"mine")
    with pytest.raises(FileExistsError, match="README"):
        TarfileExtractor(archive, progress=False).extract()
    assert (dest / "README").read_bytes() == b"mine"
    assert listing(dest) == ["README", "data.tar"]


def test_bad_arguments(dest: Path) -> None:
    with pytest.raises(ValueError, match=r"not a tar archive name.*\.tar\.gz"):
        TarfileExtractor(dest / "data.zip")
    with pytest.raises(FileNotFoundError, match="no archive"):
        TarfileExtractor(dest / "missing.tar", progress=False).extract()
    archive = dest / "data.tar"
    archive.write_bytes(make_tar([file_member("a", b"a")]))
    with pytest.raises(TypeError, match="progress must be"):
        TarfileExtractor(archive, progress="yes").extract()  # type: ignore[arg-type]


class Recorder(Callback):
    def __init__(self) -> None:
        super().__init__()
        self.updates: list[int] = []

    def relative_update(self, inc: int = 1) -> None:
        self.updates.append(inc)
        super().relative_update(inc)


def test_progress_reports_every_byte(dest: Path) -> None:
    archive = dest / "data.tar.xz"
    archive.write_bytes(make_tar(good_members(), "w:xz"))
    recorder = Recorder()
    TarfileExtractor(archive, progress=recorder).extract()
    assert recorder.size == 300 + 150 + 5
    assert sum(recorder.updates) == recorder.size == recorder.value


def test_default_progress_bar_runs(dest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = dest / "data.tar.gz"
    archive.write_bytes(make_tar(good_members(), "w:gz"))
    TarfileExtractor(archive).extract()
    assert "extract data.tar.gz" in capsys.readouterr().err


# -- remote archives and destinations ------------------------------------------------


def test_memory_archive_is_extracted_next_to_itself(memfs: fsspec.AbstractFileSystem) -> None:
    memfs.pipe_file("/ds/raw/data.tar.bz2", make_tar(good_members(), "w:bz2"))

    paths = TarfileExtractor("memory://ds/raw/data.tar.bz2", progress=False).extract()

    assert paths == [
        "memory://ds/raw/README",
        "memory://ds/raw/images/cat-again.jpg",
        "memory://ds/raw/images/cat.jpg",
        "memory://ds/raw/images/latest.jpg",
        "memory://ds/raw/images/sub/dog.png",
    ]
    assert memfs.cat_file("/ds/raw/images/cat.jpg") == b"cat" * 100
    # no links on memory://: the symlink and the hard link are stored as copies
    assert memfs.cat_file("/ds/raw/images/latest.jpg") == b"cat" * 100
    assert memfs.cat_file("/ds/raw/images/cat-again.jpg") == b"cat" * 100


def test_memory_refuses_symlinked_folders_and_uploads_nothing(
    memfs: fsspec.AbstractFileSystem,
) -> None:
    members = [
        *good_members(),
        special_member("alias", tarfile.SYMTYPE, "images/sub"),
    ]
    memfs.pipe_file("/ds/raw/data.tar", make_tar(members))
    with pytest.raises(ArchiveError, match="symlink to a folder"):
        TarfileExtractor("memory://ds/raw/data.tar", progress=False).extract()
    assert memfs.find("/ds") == ["/ds/raw/data.tar"]


def test_memory_hostile_archive_uploads_nothing(memfs: fsspec.AbstractFileSystem) -> None:
    memfs.pipe_file("/ds/raw/data.tar", make_tar([*good_members(), file_member("../x", b"x")]))
    with pytest.raises(UnsafeArchiveError, match=re.escape("'../x'")):
        TarfileExtractor("memory://ds/raw/data.tar", progress=False).extract()
    assert memfs.find("/ds") == ["/ds/raw/data.tar"]


def test_memory_missing_archive(memfs: fsspec.AbstractFileSystem) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape("memory://nothing/data.tar")):
        TarfileExtractor("memory://nothing/data.tar", progress=False).extract()


# -- limits (archive bombs) --------------------------------------------------------------


def test_defaults_are_generous_and_limits_are_checked(dest: Path) -> None:
    extractor = TarfileExtractor(str(dest / "a.tar"))
    assert extractor.max_members == 1_000_000
    assert extractor.max_total_bytes == 100 * 2**30
    assert extractor.max_member_bytes >= 2**30
    for bad in (0, -1):
        with pytest.raises(ValueError, match="max_members must be at least 1"):
            TarfileExtractor(str(dest / "a.tar"), max_members=bad)
    for bad in (1.5, "10", True, None):
        with pytest.raises(TypeError, match="max_total_bytes must be a positive int"):
            TarfileExtractor(str(dest / "a.tar"), max_total_bytes=bad)  # type: ignore[arg-type]


def many_empty_files(n: int) -> bytes:
    """A small .tar.gz of ``n`` empty files (the headers compress to almost nothing)."""
    return make_tar([file_member(f"bomb/{i:06d}.txt", b"") for i in range(n)], "w:gz")


def one_big_file(size: int) -> bytes:
    """A small .tar.gz that expands to one file of ``size`` zero bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("bomb/zeros.bin")
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("limit", "archive", "message"),
    [
        ({"max_members": 1000}, lambda: many_empty_files(1001), "max_members=1,000"),
        ({"max_total_bytes": 2**20}, lambda: one_big_file(2**20 + 1), "max_total_bytes=1,048,576"),
        (
            {"max_member_bytes": 2**16},
            lambda: one_big_file(2**16 + 1),
            "'bomb/zeros.bin' expands to 65,537 bytes, more than max_member_bytes=65,536",
        ),
    ],
)
def test_archive_over_a_limit_is_refused_and_nothing_extracted(
    dest: Path, limit: dict[str, int], archive: Any, message: str
) -> None:
    data = archive()
    assert len(data) < 20_000  # a small archive that expands a lot
    path = dest / "bomb.tar.gz"
    path.write_bytes(data)
    with pytest.raises(UnsafeArchiveError, match=re.escape(message)) as info:
        TarfileExtractor(str(path), progress=False, **limit).extract()
    assert str(path) in str(info.value)
    assert listing(dest) == ["bomb.tar.gz"]  # no staging folder, no file
    # at the limit exactly, the same archive is extracted
    at_limit = {k: v + 1 for k, v in limit.items()}
    paths = TarfileExtractor(str(path), progress=False, **at_limit).extract()
    assert paths
    assert all(Path(p).is_file() for p in paths)


def test_many_members_refused_before_reading_them_all(dest: Path) -> None:
    # 100k empty files from a ~300 KiB .tar.gz: refused at the limit from the headers
    path = dest / "many.tar.gz"
    path.write_bytes(many_empty_files(100_000))
    with pytest.raises(UnsafeArchiveError, match="more than max_members=10"):
        TarfileExtractor(str(path), progress=False, max_members=10).extract()
    assert listing(dest) == ["many.tar.gz"]


def test_memory_archive_over_a_limit_uploads_nothing(memfs: fsspec.AbstractFileSystem) -> None:
    memfs.pipe_file("/ds/raw/bomb.tar.gz", one_big_file(2**20))
    with pytest.raises(UnsafeArchiveError, match="max_total_bytes"):
        TarfileExtractor(
            "memory://ds/raw/bomb.tar.gz", progress=False, max_total_bytes=1000
        ).extract()
    assert memfs.find("/ds") == ["/ds/raw/bomb.tar.gz"]


# -- duplicate members and links ---------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "target"), [(tarfile.SYMTYPE, "victim.txt"), (tarfile.LNKTYPE, "pkg/victim.txt")]
)
def test_a_file_after_a_link_of_the_same_name_is_not_written_through_it(
    dest: Path, kind: bytes, target: str
) -> None:
    # the attack: "victim" is a file; "link" points at it (a symlink or a hard link); a
    # later regular file "link" would overwrite "victim" if written through the link
    path = dest / "attack.tar"
    path.write_bytes(
        make_tar(
            [
                file_member("pkg/victim.txt", b"original"),
                special_member("pkg/link", kind, target),
                file_member("pkg/link", b"attacker"),
            ]
        )
    )
    paths = TarfileExtractor(str(path), progress=False).extract()
    assert paths == [str(dest / "pkg" / "link"), str(dest / "pkg" / "victim.txt")]
    victim, link = dest / "pkg" / "victim.txt", dest / "pkg" / "link"
    assert victim.read_bytes() == b"original"
    assert not link.is_symlink()  # the last member of the name wins: a regular file
    assert link.read_bytes() == b"attacker"
    assert link.stat().st_ino != victim.stat().st_ino


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        # file, file: the last one's bytes
        ([file_member("d/a", b"one"), file_member("d/a", b"two")], {"d/a": b"two"}),
        # file, then symlink: the link replaces the file (it is not followed)
        (
            [
                file_member("d/t", b"t"),
                file_member("d/a", b"one"),
                special_member("d/a", tarfile.SYMTYPE, "t"),
            ],
            {"d/t": b"t", "d/a": "-> t"},
        ),
        # symlink, symlink: the last target
        (
            [
                file_member("d/t1", b"1"),
                file_member("d/t2", b"2"),
                special_member("d/a", tarfile.SYMTYPE, "t1"),
                special_member("d/a", tarfile.SYMTYPE, "t2"),
            ],
            {"d/t1": b"1", "d/t2": b"2", "d/a": "-> t2"},
        ),
        # folder, then file of the same name: the file wins, the folder's contents go
        (
            [file_member("d/a/inner", b"x"), file_member("d/a", b"file")],
            {"d/a": b"file"},
        ),
        # file, then a member beneath it: the folder wins
        ([file_member("d/a", b"file"), file_member("d/a/inner", b"x")], {"d/a/inner": b"x"}),
    ],
)
def test_duplicate_members_resolve_deterministically_last_wins(
    dest: Path, members: list[Any], expected: dict[str, Any]
) -> None:
    path = dest / "dups.tar"
    path.write_bytes(make_tar(members))
    for attempt in range(2):  # the same outcome every time
        if attempt:
            import shutil

            shutil.rmtree(dest / "d")
        TarfileExtractor(str(path), progress=False).extract()
        found: dict[str, Any] = {}
        for entry in (dest / "d").rglob("*"):
            rel = str(entry.relative_to(dest))
            if entry.is_symlink():
                found[rel] = f"-> {os.readlink(entry)}"
            elif entry.is_file():
                found[rel] = entry.read_bytes()
        assert found == expected
        assert listing(dest) == sorted(
            ["dups.tar", "d", *expected, *{str(Path(k).parent) for k in expected} - {"d"}]
        )


def _tar_with(header: str) -> bytes:
    """A .tar.gz whose one member has an 8 MiB extended header of kind ``header``."""
    buffer = io.BytesIO()
    if header == "pax":
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            info, data = file_member("a.txt", b"hi")
            info.pax_headers = {"comment": "x" * 8 * 2**20}
            tar.addfile(info, io.BytesIO(data))
    else:  # a GNU long name
        with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
            info, data = file_member("a" * 8 * 2**20, b"hi")
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.mark.parametrize("header", ["pax", "gnu-long-name"])
def test_a_huge_extended_header_is_refused_before_it_is_read(dest: Path, header: str) -> None:
    archive = dest / "bomb.tar.gz"
    archive.write_bytes(_tar_with(header))
    assert archive.stat().st_size < 100_000  # small on disk, 8 MiB of header inside
    with pytest.raises(UnsafeArchiveError, match=r"max_header_bytes=1,048,576"):
        TarfileExtractor(archive, progress=False).extract()
    assert listing(dest) == ["bomb.tar.gz"]


def test_a_raised_header_limit_lets_a_big_pax_header_through(dest: Path) -> None:
    archive = dest / "big.tar.gz"
    archive.write_bytes(_tar_with("pax"))
    paths = TarfileExtractor(archive, progress=False, max_header_bytes=16 * 2**20).extract()
    assert [Path(p).read_bytes() for p in paths] == [b"hi"]


def test_headers_count_towards_the_total(dest: Path) -> None:
    archive = dest / "bomb.tar.gz"
    archive.write_bytes(_tar_with("pax"))
    with pytest.raises(UnsafeArchiveError, match="headers expand to more than max_total_bytes"):
        TarfileExtractor(
            archive, progress=False, max_header_bytes=16 * 2**20, max_total_bytes=2**20
        ).extract()
