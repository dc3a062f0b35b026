"""The creevey command line and the offline demo."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from creevey_dask.cli.demo import run_demo
from creevey_dask.cli.main import main


@pytest.fixture
def url_file(tmp_path, image_server) -> Path:
    path = tmp_path / "urls.txt"
    urls = [image_server.url(f"/img/many/{i:03d}.jpg") for i in range(6)]
    urls.append(image_server.url("/img/nope.jpg"))
    path.write_text("# sample URLs\n" + "\n".join(urls) + "\n\n")
    return path


def test_download_from_a_text_file(url_file, tmp_path, capsys):
    out = tmp_path / "results.parquet"
    code = main(
        [
            "download",
            str(url_file),
            "--outdir",
            str(tmp_path / "img"),
            "--output",
            str(out),
            "--format",
            "jpeg",
            "--resize",
            "16x24",
            "--no-progress",
        ]
    )
    assert code == 0  # completed, even with an error row
    printed = capsys.readouterr().out
    assert "7 rows: 6 ok, 0 skipped, 1 error" in printed
    assert "HttpError: HTTP 404 Not Found" in printed
    result = pd.read_parquet(out)
    assert result.url.tolist()[-1].endswith("/img/nope.jpg")
    assert result.status.tolist() == ["ok"] * 6 + ["error"]
    for path in result.outpath.dropna():
        with Image.open(path) as im:
            assert im.size == (24, 16)
            assert im.format == "JPEG"


def test_download_then_resize_then_split_through_files(url_file, tmp_path, capsys):
    downloads = tmp_path / "downloads.csv"
    urls = [line for line in url_file.read_text().splitlines() if line.startswith("http")]
    pd.DataFrame({"link": urls, "label": ["a", "b"] * 3 + ["a"]}).to_csv(downloads, index=False)
    assert (
        main(
            [
                "download",
                str(downloads),
                "--url-col",
                "link",
                "--outdir",
                str(tmp_path / "raw"),
                "--output",
                str(tmp_path / "d.parquet"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "resize",
                str(tmp_path / "d.parquet"),
                "--path-col",
                "outpath",
                "--outdir",
                str(tmp_path / "small"),
                "--shape",
                "8",
                "--output",
                str(tmp_path / "r.parquet"),
                "--no-progress",
            ]
        )
        == 0
    )
    resized = pd.read_parquet(tmp_path / "r.parquet")
    assert (resized.status == "ok").sum() == 6
    assert (
        main(
            [
                "split",
                str(tmp_path / "r.parquet"),
                "--valid-size",
                "2",
                "--seed",
                "1",
                "--imagenet-dir",
                str(tmp_path / "tree"),
                "--output",
                str(tmp_path / "manifest.parquet"),
            ]
        )
        == 0
    )
    assert "4 train, 2 valid" in capsys.readouterr().out.replace(
        "2 valid, 4 train", "4 train, 2 valid"
    )
    links = list((tmp_path / "tree").glob("*/*/*.jpg"))  # downloads are JPEGs by default
    assert len(links) == 6
    manifest = pd.read_parquet(tmp_path / "manifest.parquet")
    assert sorted(manifest.path) == sorted(str(p.relative_to(tmp_path / "tree")) for p in links)
    assert all(p.is_symlink() and p.resolve().exists() for p in links)
    assert (
        main(
            [
                "split",
                str(tmp_path / "r.parquet"),
                "--valid-size",
                "0.5",
                "--seed",
                "1",
                "--output",
                str(tmp_path / "s.parquet"),
            ]
        )
        == 0
    )
    assert set(pd.read_parquet(tmp_path / "s.parquet").split) == {"train", "valid"}


def test_rerun_skips_what_exists(url_file, tmp_path, capsys):
    args = [
        "download",
        str(url_file),
        "--outdir",
        str(tmp_path / "img"),
        "--output",
        str(tmp_path / "r.parquet"),
        "--no-progress",
    ]
    assert main(args) == 0
    assert main(args) == 0
    assert "7 rows: 0 ok, 6 skipped, 1 error" in capsys.readouterr().out


def test_lazy_parquet_in_and_out(url_file, tmp_path, capsys):
    urls = [line for line in url_file.read_text().splitlines() if line.startswith("http")]
    pd.DataFrame({"url": urls}).to_parquet(tmp_path / "urls.parquet")
    out = tmp_path / "results"
    assert (
        main(
            [
                "download",
                str(tmp_path / "urls.parquet"),
                "--lazy",
                "--outdir",
                str(tmp_path / "img"),
                "--output",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert out.is_dir()  # a Parquet dataset, written partition by partition
    assert len(pd.read_parquet(out)) == 7
    assert "7 rows: 6 ok" in capsys.readouterr().out


#: A resize of the table that test_unusable_input_exits_2_with_a_message writes.
_RESIZE_CSV = ["resize", "{csv}", "--path-col", "path", "--outdir", "x"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["download", "no-such-file.txt", "--outdir", "x"], "does not exist"),
        (["resize", "{csv}", "--path-col", "nope", "--outdir", "x", "--shape", "4"], "no column"),
        (
            ["resize", "{csv}", "--path-col", "path", "--outdir", "x", "--shape", "0x10"],
            "must be a positive int",
        ),
        (["resize", "{csv}", "--path-col", "path", "--outdir", "x"], "exactly one of"),
        (["download", "{csv}", "--url-col", "path", "--outdir", "x", "--format", "bmp"], "format"),
        (["split", "{csv}", "--valid-size", "ten"], "--valid-size must be a number"),
        (["download", "{empty}", "--outdir", "x"], "has no sources"),
        (["download", "{csv}", "--outdir", "x", "--storage-option", "nokey"], "KEY=VALUE"),
        # a flag that would be ignored is named as typed
        (["download", "{csv}", "--url-col", "path", "--outdir", "x", "--mode", "fit"], "--mode"),
        ([*_RESIZE_CSV, "--max-dim", "4", "--mode", "fit"], "--mode applies to --shape; --min"),
        ([*_RESIZE_CSV, "--shape", "4", "--shard-size", "3"], "--shard-size applies to --output"),
    ],
)
def test_unusable_input_exits_2_with_a_message(argv, message, tmp_path, capsys):
    csv = tmp_path / "t.csv"
    pd.DataFrame({"path": ["a.jpg"], "label": ["x"]}).to_csv(csv, index=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    argv = [a.format(csv=csv, empty=empty) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("creevey: error: ")
    assert message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [[], ["download"], ["resize"], ["split"], ["dedup"], ["demo"]])
def test_help_on_every_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: creevey" in capsys.readouterr().out


def test_bad_shape_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["resize", "x.txt", "--outdir", "o", "--shape", "big"])
    assert exit_info.value.code == 2
    assert "HEIGHTxWIDTH" in capsys.readouterr().err


def test_python_dash_m_runs_the_command_line():
    proc = subprocess.run(
        [sys.executable, "-m", "creevey_dask", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        check=False,
    )
    assert proc.returncode == 0
    assert "download" in proc.stdout


def test_demo_runs_offline_end_to_end(tmp_path, capsys):
    result = run_demo(str(tmp_path / "demo"), n_images=9)
    printed = capsys.readouterr().out
    assert (result.status == "ok").sum() == 10  # 9 images + the URL that heals on retry
    assert (result.status == "error").sum() == 4
    for expected in (
        "HttpError: HTTP 404",
        "TruncatedBodyError",
        "UnsafeSourceError",
        "an HTML page",
        "where everything went",
    ):
        assert expected in printed
    demo = tmp_path / "demo"
    assert len(list((demo / "imagenet").glob("*/*/*.jpg"))) == 10
    for name in ("contact_sheet.png", "summary.png", "results.parquet"):
        assert (demo / name).stat().st_size > 0
    with pytest.raises(ValueError, match="n_images"):
        run_demo(str(tmp_path / "d2"), n_images=2)


# --- inputs, -v, --help ------------------------------------------------------------------


def _write_input(path: Path, urls: list[str]) -> None:
    """``urls`` (with a label column for tables) in the format of ``path``'s extension."""
    import gzip

    table = pd.DataFrame({"url": urls, "label": ["a"] * len(urls)})
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        table.to_parquet(path)
        return
    if name.endswith(".txt"):
        data = ("# urls\n" + "\n".join(urls) + "\n").encode()
    elif name.endswith(".csv"):
        data = table.to_csv(index=False).encode()
    elif name.endswith(".tsv"):
        data = table.to_csv(index=False, sep="\t").encode()
    elif name.endswith(".jsonl"):
        data = table.to_json(orient="records", lines=True).encode()
    else:
        data = table.to_json(orient="records").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)


@pytest.mark.parametrize(
    "name",
    [
        "u.txt.gz",
        "u.csv.gz",
        "u.tsv",
        "u.tsv.gz",
        "u.json",
        "u.jsonl",
        "u.jsonl.gz",
        "u.parquet",
    ],
)
def test_every_input_format(name, image_server, tmp_path, capsys):
    urls = [image_server.url(f"/img/many/{i:03d}.jpg") for i in range(3)]
    _write_input(tmp_path / name, urls)
    out = tmp_path / "r.parquet"
    argv = ["download", str(tmp_path / name), "--outdir", str(tmp_path / "img")]
    assert main([*argv, "--output", str(out), "--no-progress"]) == 0
    result = pd.read_parquet(out)
    assert result.url.tolist() == urls
    assert result.status.tolist() == ["ok"] * 3
    if not name.startswith("u.txt"):
        assert result.label.tolist() == ["a"] * 3
    if name.endswith((".csv.gz", ".jsonl", ".parquet")):  # lazy reads of these kinds too
        lazy = tmp_path / "lazy"
        assert main([*argv, "--output", str(lazy), "--lazy", "--no-progress"]) == 0
        assert pd.read_parquet(lazy).status.tolist() == ["skipped"] * 3
    capsys.readouterr()


def test_a_gzipped_parquet_is_refused(tmp_path, capsys):
    (tmp_path / "u.parquet.gz").write_bytes(b"\x1f\x8b")
    assert main(["download", str(tmp_path / "u.parquet.gz"), "--outdir", "x"]) == 2
    assert "drop the .gz" in capsys.readouterr().err


def _creevey(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``creevey`` command, run in a subprocess from this checkout."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, "-m", "creevey_dask", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
        check=False,
    )


def test_a_gzipped_json_lines_file_from_a_real_subprocess(image_server, tmp_path):
    urls = [image_server.url("/img/photo.jpg"), image_server.url("/img/nope.jpg")]
    _write_input(tmp_path / "urls.jsonl.gz", urls)
    done = _creevey("download", "urls.jsonl.gz", "--outdir", "img", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "2 rows: 1 ok, 0 skipped, 1 error" in done.stdout
    assert "HttpError: HTTP 404 Not Found" in done.stdout
    # progress is on by default: the end-of-run line, on stderr
    assert "creevey: 2 rows in " in done.stderr
    assert "1 ok, 0 skipped, 1 error; 1 images written (" in done.stderr
    assert "; top errors: 1 x HttpError: HTTP 404 Not Found" in done.stderr
    result = pd.read_parquet(tmp_path / "download-results.parquet")
    assert result.label.tolist() == ["a", "a"]
    with Image.open(tmp_path / result.outpath[0]) as image:  # relative to the command's folder
        assert image.format == "JPEG"  # the download default


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_before_or_after_the_subcommand(where, tmp_path, image_files):
    pd.DataFrame({"path": image_files[:2]}).to_csv(tmp_path / "p.csv", index=False)
    args = ["resize", "p.csv", "--outdir", "small", "--shape", "8", "--no-progress"]
    args = ["-v", *args] if where == "before" else [*args, "-v"]
    done = _creevey(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (
        "INFO creevey_dask.engine.summary: creevey: 2 rows: 2 ok, 0 skipped, 0 error" in done.stderr
    )
    quiet = _creevey(*args[1:] if where == "before" else args[:-1], cwd=tmp_path)
    assert quiet.returncode == 0
    assert "INFO" not in quiet.stderr


def test_verbose_parses_on_either_side() -> None:
    from creevey_dask.cli.main import build_parser

    parser = build_parser()
    base = ["split", "t.csv", "--valid-size", "1"]
    assert parser.parse_args(["-v", *base]).verbose is True
    assert parser.parse_args([*base, "-v"]).verbose is True
    assert parser.parse_args(base).verbose is False


def _subcommands() -> dict[str, Any]:
    from creevey_dask.cli.main import build_parser

    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return {"": parser, **sub.choices}


@pytest.mark.parametrize("command", ["", "download", "resize", "split", "dedup", "demo"])
def test_help_names_every_flag_and_its_default(command, tmp_path):
    parser = _subcommands()[command]
    done = _creevey(*([command] if command else []), "--help", cwd=tmp_path)
    assert done.returncode == 0
    shown = "".join(done.stdout.split())  # argparse wraps lines, also at hyphens
    for action in parser._actions:
        if isinstance(
            action, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)
        ):
            continue
        assert action.help, f"{command} {action.option_strings or action.dest}: no help text"
        if not action.option_strings or action.required:
            continue
        help_text = parser._get_formatter()._expand_help(action)
        assert "default" in help_text, f"{command} {action.option_strings}: no default shown"
        assert "".join(help_text.split()) in shown
    if command == "split":
        assert "(default:outpath)" in shown
        assert "(default:split.parquet)" in shown


def test_split_imagenet_dir_honours_stratify_and_output(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for i in range(24):  # 12 cats then 12 dogs
        path = folder / f"{i:02d}.jpg"
        Image.new("RGB", (8, 8), (i * 10, 0, 0)).save(path)
        rows.append((str(path), "cat" if i < 12 else "dog", "ok"))
    table = tmp_path / "t.csv"
    pd.DataFrame(rows, columns=["outpath", "label", "status"]).to_csv(table, index=False)

    def valid_counts(stratify: list[str], name: str) -> dict[str, int]:
        tree, manifest = tmp_path / name, tmp_path / f"{name}.parquet"
        args = ["split", str(table), "--valid-size", "0.5", "--seed", "3"]
        args += ["--imagenet-dir", str(tree), "--output", str(manifest), *stratify]
        assert main(args) == 0
        written = pd.read_parquet(manifest)  # --output: the tree's manifest
        assert len(written) == 24
        for row in written.itertuples():
            assert (tree / row.path).is_symlink()
        counts = written[written.split == "valid"].label.value_counts().to_dict()
        assert counts == {label: len(list((tree / "valid" / label).iterdir())) for label in counts}
        return counts

    assert valid_counts(["--stratify", "label"], "stratified") == {"cat": 6, "dog": 6}
    plain = valid_counts([], "plain")  # this seed leaves the labels unbalanced unstratified
    assert plain != {"cat": 6, "dog": 6}
    assert sum(plain.values()) == 12
    capsys.readouterr()


def test_dedup_writes_groups_and_a_sheet(tmp_path, capsys):
    from creevey_dask import duplicates as dup
    from creevey_dask.cli.main import DEFAULT_MAX_DISTANCE
    from creevey_dask.duplicates import DEFAULT_MAX_DISTANCE as LIBRARY_DEFAULT

    assert DEFAULT_MAX_DISTANCE == LIBRARY_DEFAULT
    folder = tmp_path / "images"
    folder.mkdir()
    rows = []
    for i in range(4):  # two different images, each written twice
        path = folder / f"{i}.png"
        shade = np.zeros((32, 32), dtype=np.uint8)
        shade[:, : 8 + 8 * (i % 2)] = 255
        Image.fromarray(shade).save(path)
        rows.append((str(path), "ok", "a" if i < 3 else "b"))
    table = pd.DataFrame(rows, columns=["outpath", "status", "sha256"])
    with_hash = table.assign(dhash=pd.array([_dhash(p) for p in table["outpath"]], dtype="UInt64"))
    source = tmp_path / "results.parquet"
    with_hash.to_parquet(source)
    out, sheet = tmp_path / "out.parquet", tmp_path / "dups.png"
    argv = ["dedup", str(source), "--hash-col", "dhash", "--max-distance", "4"]
    assert main([*argv, "--output", str(out), "--sheet", str(sheet)]) == 0
    printed = capsys.readouterr().out
    assert "4 rows: 2 duplicate groups, 2 copies" in printed
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(written, dup(with_hash, max_distance=4))
    assert written["dup_group"].tolist() == [0, 1, 0, 1]
    with Image.open(sheet) as image:
        assert image.size[1] > 0
    # only the kept rows; groups by digest only
    argv = ["dedup", str(source), "--hash-col", "", "--exact-col", "sha256", "--drop-copies"]
    assert main([*argv, "--output", str(out)]) == 0
    assert pd.read_parquet(out)["outpath"].tolist() == [rows[0][0], rows[3][0]]


def _dhash(path):
    from creevey_dask import ops

    with Image.open(path) as image:
        return ops.dhash(image)


def test_dedup_bad_arguments_exit_2(tmp_path, capsys):
    source = tmp_path / "t.csv"
    pd.DataFrame({"outpath": ["a"], "dhash": [1.5]}).to_csv(source, index=False)
    assert main(["dedup", str(source)]) == 2
    assert "integer column of 64-bit hashes" in capsys.readouterr().err
    assert main(["dedup", str(source), "--max-distance", "40"]) == 2
    assert "from 0 to 16" in capsys.readouterr().err


def test_version(capsys):
    import creevey_dask

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"creevey {creevey_dask.__version__}"


def test_a_laion_style_table_runs_as_it_comes_with_the_api_s_options(
    image_server, tmp_path, capsys
):
    """width/height columns kept; filters, hashes, --only-shrink as in the API."""
    import hashlib

    names = [f"many/{i:03d}.jpg" for i in range(6)]
    table = pd.DataFrame(
        {
            "url": [image_server.url(f"/img/{n}") for n in names],
            "caption": [f"photo {i}" for i in range(6)],
            "width": [640] * 6,  # what the crawl says, not what the server sends
            "height": [480] * 6,
            "sha": [hashlib.sha256(image_server.files[n]).hexdigest() for n in names],
        }
    )
    table.loc[5, "sha"] = "0" * 64  # one wrong digest
    table.to_parquet(tmp_path / "laion.parquet")
    out = tmp_path / "res.parquet"
    argv = ["download", str(tmp_path / "laion.parquet"), "--outdir", str(tmp_path / "img")]
    argv += ["--output", str(out), "--no-progress", "--compute-hash", "md5"]
    argv += ["--verify-hash", "sha:sha256", "--max-aspect-ratio", "1.5"]
    argv += ["--resize", "48x48", "--mode", "contain", "--only-shrink"]
    assert main(argv) == 0
    res = pd.read_parquet(out)
    assert res.width.tolist() == [640] * 6
    assert res.height.tolist() == [480] * 6
    # served 32..37 x 24: aspect ratios 1.33..1.54; 37/24 and 36/24 exceed 1.5
    widths = [32 + i for i in range(6)]
    expected = ["ok" if w / 24 <= 1.5 else "error" for w in widths]
    expected[5] = "error"
    assert res.status.tolist() == expected
    assert res.status.tolist()[:5] == ["ok"] * 5  # 36 / 24 is 1.5, not more
    assert res.error_type.tolist()[5] == "HashMismatchError"  # checked before the filter
    for row in res[res.status == "ok"].itertuples():
        with Image.open(row.outpath) as image:
            # --only-shrink: 48x48 contain would enlarge them; they keep their size
            assert image.size == (row.width_result, row.height_result) == (32 + row.Index, 24)
        assert row.source_md5 == hashlib.md5(image_server.files[names[row.Index]]).hexdigest()
    # --result-suffix names the result's columns
    argv2 = [*argv[:4], "--output", str(tmp_path / "r2.parquet"), "--no-progress"]
    assert main([*argv2, "--result-suffix", "_px", "--no-skip-existing"]) == 0
    again = pd.read_parquet(tmp_path / "r2.parquet")
    assert {"width", "height", "width_px", "height_px"} <= set(again.columns)
    assert again.width_px.tolist() == [32 + i for i in range(6)]
    # filters on the resize command too
    paths = tmp_path / "paths.csv"
    res[res.status == "ok"][["outpath"]].rename(columns={"outpath": "path"}).to_csv(paths)
    argv3 = ["resize", str(paths), "--outdir", str(tmp_path / "small"), "--max-dim", "16"]
    argv3 += ["--min-image-size", "25", "--no-progress", "--output", str(tmp_path / "r3.pq")]
    assert main(argv3) == 0
    small = pd.read_parquet(tmp_path / "r3.pq")
    assert small.status.tolist() == ["error"] * len(small)  # every shorter side is 24
    assert set(small.error_type) == {"ImageFilteredError"}
    # --max-pixels refuses from the header (the images are at most 37 x 24 = 888 pixels)
    argv4 = ["resize", str(paths), "--outdir", str(tmp_path / "px"), "--max-dim", "16"]
    argv4 += ["--max-pixels", "800", "--no-progress", "--output", str(tmp_path / "r4.pq")]
    assert main(argv4) == 0
    px = pd.read_parquet(tmp_path / "r4.pq").set_index("path")
    widths = {}
    for path in px.index:
        with Image.open(path) as image:
            widths[path] = image.width
    too_big = {path for path, width in widths.items() if 24 * width > 800}
    assert set(px.index[px.status == "error"]) == too_big != set()
    assert set(px.error_type.dropna()) == {"ImageTooLargeError"}


def test_only_shrink_needs_resize(url_file, tmp_path, capsys):
    argv = ["download", str(url_file), "--outdir", str(tmp_path), "--only-shrink"]
    assert main(argv) == 2
    assert "--only-shrink applies to --resize" in capsys.readouterr().err
    argv = ["download", str(url_file), "--outdir", str(tmp_path), "--mode", "cover"]
    assert main(argv) == 2
    assert "--mode applies to --resize; give --resize HxW too" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [url_file]  # nothing downloaded


def test_split_test_size(tmp_path, capsys):
    pd.DataFrame({"path": [f"{i}.jpg" for i in range(20)], "label": ["a", "b"] * 10}).to_csv(
        tmp_path / "t.csv", index=False
    )
    out = tmp_path / "split.parquet"
    argv = ["split", str(tmp_path / "t.csv"), "--valid-size", "4", "--test-size", "0.25"]
    assert main([*argv, "--seed", "0", "--output", str(out)]) == 0
    counts = pd.read_parquet(out).split.value_counts().to_dict()
    assert counts == {"train": 11, "valid": 4, "test": 5}
    assert main([*argv[:-2], "--test-size", "many", "--output", str(out)]) == 2
    assert "--test-size must be a number" in capsys.readouterr().err


def test_a_secret_in_the_input_path_is_not_printed(tmp_path, capsys):
    path = "memory://reader:hunter2@bucket/urls.txt?token=tok3n"
    assert main(["download", path, "--outdir", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("creevey: error: ")
    assert "hunter2" not in err
    assert "tok3n" not in err


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("creevey: error: cannot read ")
    assert "\n" not in err
    return err


def test_a_gzipped_input_of_endless_lines_is_streamed_and_refused(tmp_path, capsys):
    """More lines than MAX_LINES (here blank ones, as a gzip bomb has): exit 2, one line."""
    import gzip

    from creevey_dask.cli import tables as cli

    path = tmp_path / "urls.txt.gz"
    with gzip.open(path, "wb", compresslevel=9) as f:
        block = b"\n" * 2**20
        for _ in range(cli.MAX_LINES // len(block) + 2):
            f.write(block)
        f.write(b"http://127.0.0.1:9/a.jpg\n")
    assert path.stat().st_size < 200_000
    err = _one_line_exit_2(["download", str(path), "--outdir", str(tmp_path)], capsys)
    assert f"more than {cli.MAX_LINES:,} lines" in err
    assert not (tmp_path / "a.jpg").exists()


def test_an_overlong_line_is_refused(tmp_path, capsys):
    path = tmp_path / "urls.txt"
    path.write_bytes(b"http://127.0.0.1:9/" + b"a" * 70_000 + b".jpg\n")
    err = _one_line_exit_2(["download", str(path), "--outdir", str(tmp_path)], capsys)
    assert "line 1 is longer than 65,536 bytes" in err


@pytest.mark.parametrize("damage", ["not-gzip", "truncated", "not-utf8"])
def test_an_unreadable_input_is_one_line_and_exit_2(tmp_path, capsys, damage):
    import gzip

    path = tmp_path / "urls.txt.gz"
    whole = gzip.compress(b"http://127.0.0.1:9/a.jpg\n" * 1000)
    data = {
        "not-gzip": b"this is not gzip at all",
        "truncated": whole[: len(whole) // 2],
        "not-utf8": gzip.compress(b"\xff\xfe\xfa not text\n"),
    }[damage]
    path.write_bytes(data)
    _one_line_exit_2(["download", str(path), "--outdir", str(tmp_path)], capsys)


def test_dedup_reads_a_csv_result_table_with_error_rows(tmp_path, capsys):
    """A CSV of a result table: a null dhash (an error row) and hashes past 2**63 are kept
    exact (read as decimal text, never as floats)."""
    big = 2**63 + 5
    table = pd.DataFrame(
        {"outpath": ["a", "b", "c", "d"], "dhash": pd.array([big, big, None, 12], dtype="UInt64")}
    )
    source = tmp_path / "results.csv"
    table.to_csv(source, index=False)
    out = tmp_path / "out.parquet"
    assert main(["dedup", str(source), "--max-distance", "0", "--output", str(out)]) == 0
    written = pd.read_parquet(out)
    assert written["dhash"].tolist()[:2] == [big, big]
    assert written["dup_group"].tolist() == [0, 0, 2, 3]
    capsys.readouterr()


def test_dedup_makes_the_folder_of_its_output(tmp_path, capsys):
    table = pd.DataFrame({"outpath": ["a", "b"], "dhash": pd.array([1, 1], dtype="UInt64")})
    source = tmp_path / "results.parquet"
    table.to_parquet(source)
    out = tmp_path / "new" / "folder" / "out.parquet"
    assert main(["dedup", str(source), "--output", str(out)]) == 0
    assert pd.read_parquet(out)["dup_group"].tolist() == [0, 0]
    capsys.readouterr()
