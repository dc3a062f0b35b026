"""Write the tutorial notebooks of this folder, executed, with their outputs.

The notebooks are generated from the cells below, so that their code stays small and
reviewable, and committed executed, so that their tables, contact sheets and figures
show where the repository is browsed. After editing a cell, run::

    python notebooks/make_notebooks.py --execute

which writes each notebook, runs it in a fresh ``python3`` kernel (nbclient; this
checkout's ``creevey_dask`` on ``PYTHONPATH``, a temporary working folder) and stores
its outputs, normalised so that a rerun changes nothing that does not matter: the
loopback server's random ports read ``127.0.0.1:PORT``, the work folder each run makes
(and keeps, to look at afterwards) ``creevey-notebook-XXXXXXXX``, progress bars show
their last state with ``N`` for times and rates, and the hashes of URLs with those ports
(in file names, shard names and sample keys) ``XXXXXXXX...``, and the writing in shard
names ``YYYYMMDDTHHMMSSffffff-XXXX``; an image keeps only its smaller
encoding (PNG or JPEG), and the cells in :data:`PLAIN_OUTPUTS` keep only their plain-text output.
Without ``--execute`` the notebooks are written without outputs (quicker while
editing; ``tests/test_notebooks.py`` insists on executed ones).
``tests/test_notebooks.py`` checks that the code on disk is what this script writes and
executes every notebook again.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

# One cell per entry: ("md" or "code", id, source). The ids name the cells whose outputs
# the tests check.
Cells = list[tuple[str, str, str]]


def server_cell(n_images: int) -> str:
    """The first code cell: imports, generated images on a loopback server, a work folder."""
    return f"""\
import tempfile
from pathlib import Path

import pandas as pd

import creevey_dask as cd  # registers df.creevey on pandas and dask DataFrames
from creevey_dask.testing import ImageServer, sample_images

files = sample_images({n_images}, seed=0)  # name -> JPEG bytes, e.g. "circle_000.jpg"
server = ImageServer(files).start()  # stands in for the web: http://127.0.0.1:<port>/img/<name>
samples, label_of = sorted(files), {{name: name.split("_")[0] for name in files}}
workdir = Path(tempfile.mkdtemp(prefix="creevey-notebook-", dir=".")).resolve()  # kept after"""


QUICKSTART: Cells = [
    (
        "md",
        "intro",
        """\
# Quickstart: the `df.creevey` accessor on pandas

`import creevey_dask` adds a `creevey` accessor to pandas (and dask) DataFrames. This
notebook downloads a table of image URLs, looks at what failed with plain pandas, retries
the failed rows, resizes the downloads and shows a contact sheet and a summary figure.

Everything runs offline: a small HTTP server on 127.0.0.1 (the one the test suite uses)
serves generated images, and some of its URLs fail on purpose.""",
    ),
    ("code", "setup", server_cell(16)),
    (
        "md",
        "table-md",
        """\
A table with one row per image: a URL and a label. Besides the good URLs there are
three *flaky* ones (the server answers `503` twice, then serves the image), two that do
not exist (`404`) and one that returns an HTML page instead of an image.""",
    ),
    (
        "code",
        "table",
        """\
for i in range(3):  # the same bytes under another name, served by a flaky route
    server.files[f"flaky_{i}.jpg"] = files[samples[i]]
urls = [server.url(f"/img/{name}") for name in samples]
urls += [server.url(f"/img/flaky_{i}.jpg?fail=2&code=503") for i in range(3)]
urls += [server.url("/img/missing_1.jpg"), server.url("/img/missing_2.jpg")]
urls += [server.url("/html/not-an-image")]
labels = [label_of[name] for name in samples] + [label_of[samples[i]] for i in range(3)]
labels += ["circle", "square", "triangle"]  # the labels the failing URLs claim
df = pd.DataFrame({"url": urls, "label": labels})
df.tail(7)""",
    ),
    (
        "md",
        "download-md",
        """\
Download: one row in, one row out, with the result columns `outpath`, `status`
(`ok`/`skipped`/`error`), `error`, `error_type` and the HTTP details. A failed row is
data, not an exception. The bar (a widget when `ipywidgets` is installed, else text) and
the summary line go to stderr. `HttpOptions(retries=1)` keeps this demo quick (the
default retries 3 times).""",
    ),
    (
        "code",
        "download",
        """\
images = str(workdir / "images")
quick = cd.HttpOptions(retries=1)
res = df.creevey.download(images, http_options=quick)  # a progress bar, then a summary
res[["url", "status", "http_status", "attempts", "width", "height"]].tail(7)""",
    ),
    ("code", "status-counts", "res.status.value_counts()"),
    ("md", "errors-md", "What went wrong, grouped with pandas:"),
    ("code", "error-types", "res.error_type.value_counts()"),
    ("code", "error-counts", 'res[res.status == "error"].error.value_counts()'),
    (
        "md",
        "retry-md",
        """\
Retry just the failed rows. The flaky server has recovered by now; the missing files and
the HTML page still fail, with the same errors. (Running the whole table again would
work too: rows whose file exists are `skipped` without a request.)""",
    ),
    (
        "code",
        "retry",
        """\
retried = res[res.status == "error"].creevey.download(images, http_options=quick, progress=False)
res = pd.concat([res[res.status != "error"], retried]).sort_index()
retried[["url", "status", "error"]]""",
    ),
    ("code", "status-after-retry", "res.status.value_counts()"),
    (
        "md",
        "resize-md",
        """\
Resize the downloads into thumbnails, chaining on the download's `outpath` (kept as
`inpath`); rows whose download failed stay error rows.""",
    ),
    (
        "code",
        "resize",
        """\
thumbs = res.creevey.resize(
    str(workdir / "thumbs"),
    path_col="outpath",
    shape=(96, 128),
    mode="cover",
    measure=["size", "dhash"],
    progress=False,
)
thumbs[["inpath", "label", "status", "width", "height"]].head()""",
    ),
    ("md", "sheet-md", "A contact sheet of a seeded sample, captioned with label and status:"),
    (
        "code",
        "contact-sheet",
        """\
thumbs.creevey.contact_sheet(
    caption_cols=("label", "status"), n=24, ncols=6, thumb_size=96, random_state=0
)""",
    ),
    (
        "md",
        "duplicates-md",
        """\
The three flaky URLs served the same images as three others: copies, which would leak
between train and valid. `measure=["dhash"]` gave each thumbnail a 64-bit perceptual hash;
`duplicates()` groups the rows whose hashes are at most 4 bits apart (`dup_group`) and
marks one row per group to keep (`dup_keep`). The largest groups, one per row:""",
    ),
    (
        "code",
        "duplicates",
        """\
from creevey_dask import duplicate_sheet

groups = thumbs.creevey.duplicates()
sizes = groups[groups.status == "ok"].dup_group.value_counts()
print(len(sizes), "groups of images,", int((sizes > 1).sum()), "with copies")
duplicate_sheet(groups, n_groups=3, ncols=3, thumb_size=96)""",
    ),
    (
        "md",
        "leaks-md",
        """\
Split on the groups, so that every copy lands on the side of its original, and check it:
`leaks()` lists the duplicate pairs that cross a split.""",
    ),
    (
        "code",
        "leaks",
        """\
split = groups.creevey.split(0.25, groupby="dup_group", random_state=0)
plain = thumbs.creevey.split(0.25, random_state=0)  # without the groups
print(len(split.creevey.leaks()), "pairs cross the grouped split,", end=" ")
print(len(plain.creevey.leaks()), "cross the plain one")""",
    ),
    ("md", "summary-md", "And the summary figure: statuses, error kinds, size histograms."),
    ("code", "summary-figure", "res.creevey.summary_figure(size=(800, 480))"),
    (
        "code",
        "cleanup",
        """\
server.stop()
print("the outputs stay in", workdir.name)""",
    ),
]

DISTRIBUTED: Cells = [
    (
        "md",
        "intro",
        """\
# On a cluster: dask frames, a `LocalCluster`, results to Parquet

The same accessor works on dask DataFrames. With a `distributed` Client active, every
creevey_dask run uses its cluster; here a `LocalCluster` of two worker processes on this
machine stands in for a real one (`Client("tcp://scheduler:8786")` would be the only
change). The work stays lazy until the results are written to Parquet.""",
    ),
    ("code", "setup", server_cell(24)),
    ("md", "table-md", "The table of URLs, as it would usually arrive: a Parquet file."),
    (
        "code",
        "table",
        """\
urls = [server.url(f"/img/{name}") for name in samples]
urls += [server.url("/img/missing.jpg"), server.url("/html/not-an-image")]
labels = [label_of[name] for name in samples] + ["circle", "square"]
table = pd.DataFrame({"url": urls, "label": labels})
table.to_parquet(workdir / "urls.parquet")""",
    ),
    (
        "md",
        "cluster-md",
        """\
Start a local cluster. The Client becomes the default, and the link to its dashboard is
printed (the dashboard needs `bokeh` installed).""",
    ),
    (
        "code",
        "cluster",
        """\
from creevey_dask.cluster import start_local_cluster

client = start_local_cluster(n_workers=2, threads_per_worker=1, memory_limit="1GiB")
client""",
    ),
    (
        "code",
        "read",
        """\
import dask.dataframe as dd

ddf = dd.read_parquet(workdir / "urls.parquet").repartition(npartitions=4)
ddf.npartitions""",
    ),
    (
        "md",
        "lazy-md",
        """\
Download and resize, lazily: these lines build a task graph and return at once. Each
partition is one task, which runs its rows through a small thread pool on a worker.""",
    ),
    (
        "code",
        "lazy",
        """\
quick = cd.HttpOptions(retries=1)
downloaded = ddf.creevey.download(str(workdir / "images"), http_options=quick)
resized = downloaded.creevey.resize(
    str(workdir / "thumbs"), path_col="outpath", shape=cd.ops.resize(max_dim=128), measure=["size"]
)
resized""",
    ),
    (
        "md",
        "write-md",
        "Writing the result table computes it, partition by partition, on the workers:",
    ),
    (
        "code",
        "write",
        """\
resized.to_parquet(workdir / "results.parquet")
results = pd.read_parquet(workdir / "results.parquet")
results.status.value_counts()""",
    ),
    (
        "md",
        "errors-md",
        """\
The resize reports a failed download as an `UpstreamError` that carries the download's
own error; the download's columns (`http_status`, `attempts`, ...) stay in the table too:""",
    ),
    (
        "code",
        "errors",
        'with pd.option_context("display.max_colwidth", None, "display.width", 250):\n'
        '    display(results.loc[results.status == "error", ["http_status", "attempts", "error"]])',
    ),
    ("code", "sizes", 'results[["width", "height"]].describe().loc[["count", "max"]]'),
    (
        "md",
        "shards-md",
        """\
Past about a million images a folder of files stops working (object stores charge per
request, listing takes minutes, loaders want sequential reads). The same download can
write **WebDataset shards** instead (`cd.ShardOptions`): tars of up to `shard_size`
samples (the image, a `.json` of the row's columns and, with `caption_col=`, a `.txt`),
each with a Parquet of its rows' records beside it. It is lazy like the rest; writing the
result table runs it on the workers. (`output_format="parquet"` writes Parquet shards
with an image column that Hugging Face `datasets` reads as images.)""",
    ),
    (
        "code",
        "shards",
        """\
from creevey_dask import ops

sharded = ddf.creevey.download(
    str(workdir / "shards"),
    format="jpeg",
    ops=[ops.resize(shape=(128, 128), mode="cover")],
    output_format=cd.ShardOptions("webdataset", shard_size=4, caption_col="label"),
    http_options=quick,
)
sharded.to_parquet(workdir / "sharded.parquet")
sorted(p.name for p in (workdir / "shards").iterdir())[:6]""",
    ),
    (
        "md",
        "records-md",
        """\
`creevey_dask.read_shards` reads every shard's records back as a dask frame, so the
failures of a sharded run are analysed (and retried) like those of a files run:""",
    ),
    (
        "code",
        "records",
        """\
from creevey_dask import read_shards

records = read_shards(str(workdir / "shards")).compute()
records.groupby("status", observed=True).size()""",
    ),
    (
        "md",
        "wds-md",
        "The `webdataset` package reads the shards as they are, decoding each sample:",
    ),
    (
        "code",
        "wds",
        """\
import webdataset as wds

tars = sorted(str(p) for p in (workdir / "shards").glob("*.tar"))
samples = list(wds.WebDataset(tars, shardshuffle=False).decode("pil"))
first = samples[0]
print(len(samples), "samples;", first["__key__"], first["txt"], first["jpg"].size)
print({k: first["json"][k] for k in ("label", "width", "height", "http_status")})
first["jpg"]""",
    ),
    (
        "code",
        "cleanup",
        """\
client.close()
client.cluster.close()
server.stop()
print("the outputs stay in", workdir.name)""",
    ),
]

DATASETS: Cells = [
    (
        "md",
        "intro",
        """\
# A dataset class, end to end

A dataset is a base folder with `raw/` (data as received), `interim/` and `processed/`
(ready for modelling). `UrlListDataset`, the worked example in
`creevey_dask.datasets.url_list`, downloads a table of URLs into `raw/`, resizes the images into
`processed/` and lays them out as ImageNet-style `train`/`valid` folders. Its source is
short: copy it as a starting point for your own datasets.""",
    ),
    ("code", "setup", server_cell(12)),
    (
        "code",
        "table",
        """\
urls = [server.url(f"/img/{name}") for name in samples] + [server.url("/img/missing.jpg")]
labels = [label_of[name] for name in samples] + ["circle"]
table = pd.DataFrame({"url": urls, "label": labels})
table.tail(3)""",
    ),
    (
        "code",
        "build",
        """\
from creevey_dask import UrlListDataset

ds = UrlListDataset(
    str(workdir / "pets"),
    table,
    shape=(64, 64),
    valid_size=0.25,
    random_state=0,
    http_options=cd.HttpOptions(retries=1),
)
ds.build()""",
    ),
    (
        "md",
        "raw-md",
        "`raw/` holds the table, the downloads and the download's result table; the failed "
        "URL is an error row, not a failed build.",
    ),
    (
        "code",
        "download-result",
        'ds.download_result()[["url", "label", "status", "error"]].tail(3)',
    ),
    ("md", "files-md", "`files()` lists a stage as a DataFrame, ready for more pipelines:"),
    (
        "code",
        "files",
        """\
processed = ds.files("processed")
processed.path.str.removeprefix(ds.processed_dir + "/").str.split("/").str[0].value_counts()""",
    ),
    ("md", "tree-md", "The train/valid tree: symlinks to the resized images, and its manifest."),
    (
        "code",
        "tree",
        """\
tree = workdir / "pets" / "processed" / "imagenet"
for split in ("train", "valid"):
    for label in sorted(p.name for p in (tree / split).iterdir()):
        links = sorted((tree / split / label).iterdir())
        example = f", e.g. {links[0].name} -> {links[0].readlink()}" if links else ""
        print(f"{split}/{label}: {len(links)} images{example}")  # empty folders are kept""",
    ),
    ("code", "manifest", 'ds.manifest().groupby(["split", "label"]).size()'),
    (
        "md",
        "rebuild-md",
        """\
`build()` is idempotent: the completed download is recorded, so a second build makes no
request, and the resize skips the images it already wrote.""",
    ),
    (
        "code",
        "rebuild",
        """\
before = sum(server.hits.values())
ds.build()
print("requests during the rebuild:", sum(server.hits.values()) - before)
ds.resize_result().status.value_counts()""",
    ),
    (
        "code",
        "cleanup",
        """\
server.stop()
print("the outputs stay in", workdir.name)""",
    ),
]

NOTEBOOKS = {
    "01_quickstart.ipynb": QUICKSTART,
    "02_distributed.ipynb": DISTRIBUTED,
    "03_datasets.ipynb": DATASETS,
}


#: Cells whose rich output changes on every run (a dask Client's HTML: ids, memory,
#: worker addresses): only their ``text/plain`` output is kept.
PLAIN_OUTPUTS = {("02_distributed.ipynb", "cluster")}
#: Seconds per cell when executing.
CELL_TIMEOUT = 300

_PORT = re.compile(r"\b(127\.0\.0\.1|localhost):\d{2,5}\b")
_WORKDIR = re.compile(r"(?:[^\s'\"<>()]*/)?creevey-notebook-[A-Za-z0-9_]{8}")
#: The script's own scratch folder, where a table cell cuts a path before the work folder.
_SCRATCH = re.compile(r"creevey-make-notebooks-[A-Za-z0-9_]{8}")
_URL_HASH = re.compile(r"_[0-9a-f]{16}\.(jpg|png|webp)\b")  # naming="url_hash": of the URL
_SHARD = re.compile(r"\b(\d{5}-\d{4})-[0-9a-f]{8}\b")  # shard names: a token of their rows
#: A shard name's writing: the call's UTC start to the microsecond and 4 random digits.
_WRITING = re.compile(r"\b\d{8}T\d{12}-[0-9a-f]{4}-")
_KEY = re.compile(r"\b[0-9a-f]{16}\b")  # sample keys: hashes of URLs
_BAR_TIMES = re.compile(r"\[\d+:\d+<[\d:?]+, +[\d.?]+ *(\w+)/s\]")  # a progress bar's
_SUMMARY_TIMES = re.compile(r"in \d+\.\d s: (.*) \([\d.]+ images/s\)")  # the summary's


def build(cells: Cells) -> nbformat.NotebookNode:
    """The notebook of ``cells``, without outputs."""
    made = [
        (new_markdown_cell if kind == "md" else new_code_cell)(source, id=cell_id)
        for kind, cell_id, source in cells
    ]
    return new_notebook(
        cells=made,
        metadata={
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
    )


def render(cells: Cells) -> str:
    """The notebook of ``cells`` as the text written to disk, without outputs."""
    return write(build(cells))


def write(notebook: nbformat.NotebookNode) -> str:
    """``notebook`` as the text written to disk."""
    nbformat.validate(notebook)
    return nbformat.writes(notebook) + "\n"


def _as_shown(text: str) -> str:
    """A stream's text as a terminal shows it: each line's last redraw (after ``\\r``)."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def _normalize_text(text: str) -> str:
    text = _BAR_TIMES.sub(r"[00:00<00:00, N \1/s]", text)
    text = _SUMMARY_TIMES.sub(r"in N s: \1 (N images/s)", text)
    text = _PORT.sub(r"\1:PORT", text)
    text = _URL_HASH.sub(r"_XXXXXXXXXXXXXXXX.\1", text)  # hashes of URLs with that port
    text = _SHARD.sub(r"\1-XXXXXXXX", text)
    text = _WRITING.sub("YYYYMMDDTHHMMSSffffff-XXXX-", text)
    text = _KEY.sub("XXXXXXXXXXXXXXXX", text)
    text = _SCRATCH.sub("creevey-make-notebooks-XXXXXXXX", text)
    return _WORKDIR.sub("creevey-notebook-XXXXXXXX", text)


def normalize(name: str, notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Make ``notebook``'s outputs stable from run to run and small (see the module docs)."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata.pop("execution", None)
        merged: list[Any] = []  # a bar's redraws arrive as many stream outputs: one each
        for output in cell.outputs:
            last = merged[-1] if merged else None
            if (
                output.output_type == "stream"
                and last is not None
                and last.output_type == "stream"
                and last.name == output.name
            ):
                last.text += output.text
            else:
                merged.append(output)
        cell.outputs = merged
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = _normalize_text(_as_shown(output.text))
                continue
            data = output.get("data", {})
            if (name, cell.id) in PLAIN_OUTPUTS:
                for key in [k for k in data if k != "text/plain"]:
                    del data[key]
            images = [k for k in ("image/png", "image/jpeg") if k in data]
            if len(images) == 2:  # keep the smaller encoding of the same picture
                larger = max(images, key=lambda k: len(base64.b64decode(data[k])))
                del data[larger]
            for key, value in data.items():
                if key.startswith("text/"):
                    data[key] = _normalize_text(value)
    notebook.metadata["language_info"] = {"name": "python"}
    return notebook


def execute(
    name: str, cells: Cells, workdir: str | os.PathLike[str] | None = None
) -> nbformat.NotebookNode:
    """Run the notebook of ``cells`` in a fresh kernel; return it with normalised outputs.

    The kernel's working folder and ``TMPDIR`` are ``workdir``; by default they are a
    temporary folder (removed afterwards) and ``/tmp``, so that the paths the outputs
    show are the same on every run. The kernel imports this checkout's ``creevey_dask``.
    A failing cell raises ``nbclient.exceptions.CellExecutionError``.
    """
    import nbclient

    notebook = build(cells)
    root = HERE.parent
    made = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="creevey-make-notebooks-") if made else workdir)
    try:
        pythonpath = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)
        client = nbclient.NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(folder)}},
        )
        tmp = "/tmp" if made and os.path.isdir("/tmp") else str(folder)  # stable paths shown
        client.execute(env={**os.environ, "PYTHONPATH": pythonpath, "TMPDIR": tmp})
    finally:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
    return normalize(name, notebook)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--execute", action="store_true", help="run the notebooks and keep their outputs"
    )
    parser.add_argument(
        "names", nargs="*", help="only these notebooks (default: all)", metavar="NAME"
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NOTEBOOKS))
    if unknown:
        parser.error(f"no notebook(s) {unknown}; choose from {sorted(NOTEBOOKS)}")
    for name, cells in NOTEBOOKS.items():
        if args.names and name not in args.names:
            continue
        text = write(execute(name, cells)) if args.execute else render(cells)
        (HERE / name).write_text(text, encoding="utf-8")
        print("wrote", HERE / name, "(executed)" if args.execute else "(no outputs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
