"""``creevey demo``: the whole job, offline, on generated images.

Sample images (circles, squares and triangles on coloured backgrounds, labelled by
shape) are served from a loopback HTTP server on 127.0.0.1, with a few URLs failing on
purpose: a 404, a server error that heals on retry, an HTML page, a body cut short and a
redirect to ``file://``. The demo downloads them, resizes the downloads, lays them out
as ImageNet-style ``train/valid/<label>/`` folders, draws a contact sheet and a summary
figure, and prints what happened and where everything went. Nothing leaves the machine.
"""

from __future__ import annotations

import os
import shutil

import pandas as pd

from ..sources.http import HttpOptions
from ..testing import LABELS, ImageServer, sample_images

__all__ = ["run_demo"]


def _url_table(server: ImageServer, images: dict[str, bytes]) -> pd.DataFrame:
    rows = [(server.url(f"/img/{name}"), name.split("_")[0]) for name in images]
    first = next(iter(images))
    rows += [
        (server.url("/img/missing_cat.jpg"), "circle"),  # 404
        (server.url(f"/img/{first}?fail=1&code=503&retry_after=0"), "circle"),  # heals on retry
        (server.url("/html/gallery.jpg"), "square"),  # a web page, not an image
        (server.url(f"/img/{first}?short=1&name=cut.jpg"), "square"),  # body cut short
        (server.url("/redirect-to?url=file:///etc/passwd"), "triangle"),  # refused scheme
    ]
    return pd.DataFrame(rows, columns=["url", "label"])


def run_demo(outdir: str = "creevey-demo-output", n_images: int = 24) -> pd.DataFrame:
    """Run the whole job on ``n_images`` generated images; return the resize result.

    Writes ``outdir/raw`` (downloads), ``outdir/small`` (128x128 thumbnails),
    ``outdir/imagenet/{train,valid}/<label>/`` (relative symlinks),
    ``outdir/results.parquet``, ``outdir/contact_sheet.png`` and
    ``outdir/summary.png``. An earlier demo output in ``outdir`` is replaced.
    """
    import creevey_dask  # noqa: F401  (registers the accessor)

    if n_images < len(LABELS) * 2:
        raise ValueError(f"n_images must be at least {len(LABELS) * 2}, got {n_images}")
    for sub in ("raw", "small", "imagenet"):
        shutil.rmtree(os.path.join(outdir, sub), ignore_errors=True)
    images = sample_images(n_images)
    http = HttpOptions(
        connect_timeout=2,
        read_timeout=5,
        deadline=20,
        retries=2,
        backoff_base=0.05,
        backoff_cap=0.2,
    )
    with ImageServer(images) as server:
        table = _url_table(server, images)
        print(
            f"serving {len(images)} sample images on {server.url()} "
            f"(and {len(table) - len(images)} URLs that fail on purpose)\n"
        )
        downloaded = table.creevey.download(
            os.path.join(outdir, "raw"),
            format="jpeg",
            naming="url_hash",
            http_options=http,
            progress=False,
        )
    small = downloaded.creevey.resize(
        os.path.join(outdir, "small"),
        path_col="outpath",
        shape=(128, 128),
        mode="cover",
        format="jpeg",
        quality=90,
        progress=False,
    )
    tree = os.path.join(outdir, "imagenet")
    manifest = small.creevey.imagenet_symlinks(
        tree, label_col="label", valid_size=0.25, random_state=0
    )
    small.to_parquet(os.path.join(outdir, "results.parquet"))
    small.creevey.contact_sheet(
        caption_cols=("label", "status"),
        n=min(len(small), 24),
        random_state=0,
        save_to=os.path.join(outdir, "contact_sheet.png"),
    )
    downloaded.creevey.summary_figure(save_to=os.path.join(outdir, "summary.png"))

    with pd.option_context("display.width", 160, "display.max_colwidth", 48):
        print("download result (first rows):")
        print(
            downloaded[["url", "label", "status", "http_status", "attempts", "width", "height"]]
            .head(8)
            .to_string()
        )
        errors = downloaded.loc[downloaded.status == "error", "error"]
        print(f"\ndownloads: {downloaded.status.value_counts().to_dict()}")
        print("errors, as pandas sees them (res[res.status == 'error'].error):")
        for message in errors:
            print(f"  - {message}")
    print(f"\nresized:   {small.status.value_counts().to_dict()}")
    counts = manifest.groupby(["split", "label"]).size().unstack(fill_value=0)
    print(f"\ntrain/valid folders ({len(manifest)} links):\n{counts.to_string()}")
    print("\nwhere everything went:")
    for what, path in [
        ("downloads", "raw"),
        ("128x128 thumbnails", "small"),
        ("ImageNet-style tree", "imagenet"),
        ("result table", "results.parquet"),
        ("contact sheet", "contact_sheet.png"),
        ("summary figure", "summary.png"),
    ]:
        print(f"  {what:20s} {os.path.join(outdir, path)}")
    return small
