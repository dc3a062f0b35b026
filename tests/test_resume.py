"""Crash and resume: a run killed with SIGKILL and rerun ends as if never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import make_photo

RUN_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import pandas as pd
    from creevey_dask import Pipeline, RunOptions, load_image, report

    sources, outdir, result_path = json.load(open(sys.argv[1]))

    def slow_shrink(image):
        time.sleep(0.04)  # stands in for real work, so the kill lands mid-run
        return image.resize((image.width // 2, image.height // 2))

    pipeline = Pipeline(
        load_image, ops=[slow_shrink, report("width", lambda im: im.width, "Int64")]
    )
    print("started", flush=True)
    result = pipeline.run(
        pd.DataFrame({"path": sources}),
        lambda s: outdir + "/" + s.rsplit("/", 1)[-1].replace(".jpg", ".png"),
        inpath_col="path",
        n_jobs=3,
        options=RunOptions(npartitions=6),
        progress=False,
    )
    result.to_parquet(result_path)
    print("finished", flush=True)
    """
)


def _start(script: Path, args: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.Popen(
        [sys.executable, str(script), str(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _run(script: Path, workdir: Path, sources: list[str], outdir: Path, name: str) -> Path:
    result = workdir / f"{name}.parquet"
    args = workdir / f"{name}.json"
    args.write_text(json.dumps([sources, str(outdir), str(result)]))
    proc = _start(script, args)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return result


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_files_and_records(tmp_path):
    rng = np.random.default_rng(20261121)
    src = tmp_path / "src"
    src.mkdir()
    sources = []
    for i in range(120):
        path = src / f"photo{i:03d}.jpg"
        make_photo(int(rng.integers(60, 200)), int(rng.integers(40, 150)), seed=i).save(path)
        sources.append(str(path))
    script = tmp_path / "run.py"
    script.write_text(RUN_SCRIPT)

    reference = pd.read_parquet(_run(script, tmp_path, sources, tmp_path / "ref", "ref"))
    assert (reference.status == "ok").all()

    outdir = tmp_path / "out"
    args = tmp_path / "killed.json"
    args.write_text(json.dumps([sources, str(outdir), str(tmp_path / "never.parquet")]))
    kills = 0
    for attempt in range(4):
        done_before = len(list(outdir.glob("*.png"))) if outdir.exists() else 0
        # kill once a random share of the remaining rows has been written
        target = done_before + int(rng.integers(1, max(2, (len(sources) - done_before) // 2)))
        proc = _start(script, args)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if outdir.exists() and len(list(outdir.glob("*.png"))) >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        proc.wait(timeout=60)
        assert proc.stdout is not None
        proc.stdout.close()
        done = len(list(outdir.glob("*.png")))
        print(f"attempt {attempt}: killed at {target}, {done} of {len(sources)} files written")
    assert kills == 4  # the test only means something if runs really were interrupted
    assert not (tmp_path / "never.parquet").exists()

    final = pd.read_parquet(_run(script, tmp_path, sources, outdir, "final"))
    assert len(final) == len(sources)
    assert final.index.tolist() == reference.index.tolist()
    assert set(final.status) <= {"ok", "skipped"}
    assert (final.status == "skipped").sum() > 0  # earlier runs had written some files
    assert [Path(p).name for p in final.outpath] == [Path(p).name for p in reference.outpath]
    # the same files, byte for byte, and nothing else: no partial or temporary files
    assert sorted(p.name for p in outdir.iterdir()) == sorted(
        p.name for p in (tmp_path / "ref").iterdir()
    )
    for path in (p for p in outdir.iterdir() if p.is_file()):
        assert path.read_bytes() == (tmp_path / "ref" / path.name).read_bytes()
        with Image.open(path) as im:
            im.load()
    # rows done in this run carry the same measurements as the uninterrupted run
    redone = final.status == "ok"
    assert final.width[redone].tolist() == reference.width[redone].tolist()
