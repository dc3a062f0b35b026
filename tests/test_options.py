"""RunOptions: the run knobs in one frozen object, and the shortcut rule."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from creevey_dask import HttpOptions, RunOptions
from creevey_dask.options import run_options


def test_defaults_frozen_picklable():
    opts = RunOptions()
    assert (opts.n_jobs, opts.skip_existing, opts.progress) == (None, True, True)
    assert (opts.npartitions, opts.storage_options, opts.parallel_strategy) == (None, None, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.n_jobs = 3  # type: ignore[misc]
    full = RunOptions(4, False, False, 2, {"anon": True}, "processes")
    assert pickle.loads(pickle.dumps(full)) == full


def test_storage_options_are_copied():
    given = {"anon": True}
    opts = RunOptions(storage_options=given)
    given["anon"] = False
    assert opts.storage_options == {"anon": True}


@pytest.mark.parametrize(
    ("fields", "error", "match"),
    [
        ({"n_jobs": 0}, ValueError, "n_jobs must be at least 1"),
        ({"n_jobs": 2.5}, TypeError, "n_jobs must be a positive int"),
        ({"n_jobs": True}, TypeError, "n_jobs must be a positive int"),
        ({"npartitions": -1}, ValueError, "npartitions must be at least 1"),
        ({"skip_existing": "yes"}, TypeError, "skip_existing must be True or False"),
        ({"progress": 1}, TypeError, "progress must be True or False"),
        ({"storage_options": [("anon", True)]}, TypeError, "storage_options must be a mapping"),
        (
            {"parallel_strategy": "gpu"},
            ValueError,
            r"not one of \['auto', 'threads', 'processes'\]",
        ),
    ],
)
def test_bad_values_fail_when_made(fields, error, match):
    with pytest.raises(error, match=match):
        RunOptions(**fields)


def test_replace_and_shortcuts():
    base = RunOptions(n_jobs=2, progress=False)
    assert base.replace(n_jobs=3) == RunOptions(n_jobs=3, progress=False)
    with pytest.raises(TypeError, match=r"RunOptions has no option\(s\) \['jobs'\]"):
        base.replace(jobs=3)
    # a shortcut that is given wins; None means "not given"
    assert run_options(base, n_jobs=None, skip_existing=False) == base.replace(skip_existing=False)
    assert run_options(None, progress=False) == RunOptions(progress=False)
    assert run_options(base) is base
    with pytest.raises(TypeError, match="HTTP settings go to http_options="):
        run_options(HttpOptions())  # type: ignore[arg-type]
