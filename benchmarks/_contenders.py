"""One benchmark contender, run as a user's script: ``python _contenders.py SPEC.json``.

Each contender runs in a fresh interpreter, so the time measured from outside includes
interpreter start-up and every import, as it would for a user. The spec says who runs
(``who``), the sources (``sources``: paths or URLs), the output folder and how many
processes/threads a bare loop uses. Contenders:

* ``bare-draft``: the obvious fast loop: a process per core, each with a thread pool;
  Pillow opens the image, ``Image.draft`` at the target (the smallest decode whose
  centre square still covers it), converts to RGB, centre-crops and resizes (bicubic),
  saves JPEG q95. HTTP sources are fetched with a ``requests.Session`` per thread.
* ``bare-draft2x``: the same with ``draft`` at twice the target (the old baseline).
* ``bare-full``: the same without ``draft`` (the full-decode quality bar).
* ``bare-rule``: the same loop doing creevey_dask's decode + resize instead
  (``decode_image(data, draft=op.draft_size)`` then ``op`` for the default
  ``ops.resize(shape=(256, 256), mode="cover")``): the speed of its quality rule without
  the library around it, so ``creevey / bare-rule`` is the engine's own cost.
* ``creevey-processes`` / ``creevey-threads``: the default call with
  ``parallel_strategy="processes"`` (the local process pool: a process per core, forked per run) or
  ``"threads"`` (one process of threads), to compare the two with the default's choice.
* ``creevey``: the default call (no flags: ``parallel_strategy="auto"``, which picks
  processes or threads): ``df.creevey.resize(outdir, path_col="path",
  shape=(256, 256), mode="cover", format="jpeg", quality=95)`` for paths, or
  ``df.creevey.download(outdir, format="jpeg", quality=95,
  ops=[ops.resize(shape=(256, 256), mode="cover")])`` for URLs.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from pathlib import Path

TARGET = 256
QUALITY = 95


def _cover_box(width: int, height: int) -> tuple[float, float, float, float]:
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


_local = threading.local()


def _read(source: str) -> bytes:
    if source.startswith("http"):
        session = getattr(_local, "session", None)
        if session is None:
            import requests

            session = _local.session = requests.Session()
        response = session.get(source, timeout=(5, 30))
        response.raise_for_status()
        return bytes(response.content)
    with open(source, "rb") as f:
        return f.read()


#: The draft margin of each bare contender (None: no draft).
MARGINS = {"bare-draft": 1.0, "bare-draft2x": 2.0, "bare-full": None}


def _bare_one(job: tuple[str, str, str]) -> bool:
    import io

    from PIL import Image

    source, outpath, who = job
    if who == "bare-rule":
        return _rule_one(source, outpath)
    margin = MARGINS[who]
    try:
        image = Image.open(io.BytesIO(_read(source)))
        if margin is not None:
            width, height = image.size
            scale = margin * TARGET / min(width, height)
            if scale < 1:
                image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        image = image.convert("RGB")
        out = image.resize((TARGET, TARGET), Image.Resampling.BICUBIC, box=_cover_box(*image.size))
        out.save(outpath, "JPEG", quality=QUALITY)
        return True
    except Exception:
        return False


def _rule_one(source: str, outpath: str) -> bool:
    from creevey_dask import ops
    from creevey_dask.image.imagefile import decode_image

    try:
        op = ops.resize(shape=(TARGET, TARGET), mode="cover")
        out = op(decode_image(_read(source), draft=op.draft_size))
        out.save(outpath, "JPEG", quality=QUALITY)
        return True
    except Exception:
        return False


def _bare_chunk(args: tuple[list[tuple[str, str, str]], int]) -> int:
    from concurrent.futures import ThreadPoolExecutor

    jobs, threads = args
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(_bare_one, jobs))


def run_bare(spec: dict) -> int:
    from concurrent.futures import ProcessPoolExecutor

    who = spec["who"]
    processes = len(os.sched_getaffinity(0))
    jobs = [(s, os.path.join(spec["outdir"], os.path.basename(s)), who) for s in spec["sources"]]
    chunks = [(jobs[i::processes], spec["threads"]) for i in range(processes)]
    if processes == 1:
        return _bare_chunk(chunks[0])
    with ProcessPoolExecutor(processes) as pool:
        return sum(pool.map(_bare_chunk, chunks))


def run_creevey(spec: dict) -> int:
    import pandas as pd

    import creevey_dask  # registers df.creevey
    from creevey_dask import ops

    sources = spec["sources"]
    forced = spec["who"].partition("-")[2]  # "processes", "threads" or "" (the default)
    extra = {"options": creevey_dask.RunOptions(parallel_strategy=forced)} if forced else {}
    if sources[0].startswith("http"):
        result = pd.DataFrame({"url": sources}).creevey.download(
            spec["outdir"],
            format="jpeg",
            quality=QUALITY,
            ops=[ops.resize(shape=(TARGET, TARGET), mode="cover")],
            **extra,
        )
    else:
        result = pd.DataFrame({"path": sources}).creevey.resize(
            spec["outdir"],
            path_col="path",
            shape=(TARGET, TARGET),
            mode="cover",
            format="jpeg",
            quality=QUALITY,
            **extra,
        )
    return int((result["status"] == "ok").sum())


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    if spec["who"].startswith("creevey") or spec["who"] == "bare-rule":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    ok = run_creevey(spec) if spec["who"].startswith("creevey") else run_bare(spec)
    print(json.dumps({"ok": ok}), flush=True)


if __name__ == "__main__":
    main()
