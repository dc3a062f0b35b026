"""Starting a ``dask.distributed`` cluster for the user, and what runs on it.

Every creevey_dask run uses the active ``distributed`` Client when there is one, so
scaling out is: start or connect a Client, then run the same code. This module starts a
local cluster with sensible defaults for image work and tells the user where its
dashboard is.

Politeness limits (``per_host_limit`` and ``per_host_rate`` of downloads) hold across
the whole cluster: the workers share a ``distributed.Semaphore`` per host, leased in
batches by each worker process; a dead worker's slots come back within seconds
(``creevey_dask.sources.http._leases``; docs/clusters.md).
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["start_local_cluster"]

logger = logging.getLogger(__name__)


def start_local_cluster(
    n_workers: int | None = None,
    threads_per_worker: int = 1,
    *,
    dashboard: bool = True,
    quiet: bool = False,
    **cluster_kwargs: Any,
) -> Any:
    """Start a ``distributed.LocalCluster`` on 127.0.0.1 and return a Client for it.

    The Client becomes the default, so every creevey_dask run afterwards uses it. The
    dashboard link is printed (and logged) unless ``quiet``.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes; by default one per CPU.
    threads_per_worker : int, default 1
        dask threads per worker. Each partition task runs its own pool of ``n_jobs``
        threads, so one dask thread per process is usually right for image work.
    dashboard : bool, default True
        Serve the dashboard (on a free port on 127.0.0.1).
    quiet : bool, default False
        Do not print the dashboard link.
    **cluster_kwargs
        Passed to ``distributed.LocalCluster`` (e.g. ``memory_limit``).

    Returns
    -------
    distributed.Client
        Close it (or use it as a context manager) to stop the cluster.

    Examples
    --------
    >>> client = start_local_cluster(n_workers=2, quiet=True)  # doctest: +SKIP
    >>> res = df.creevey.download("images/")                   # doctest: +SKIP
    """
    import os

    from distributed import Client, LocalCluster

    if n_workers is None:
        n_workers = os.cpu_count() or 1
    if not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    if not isinstance(threads_per_worker, int) or threads_per_worker < 1:
        raise ValueError(f"threads_per_worker must be a positive int, got {threads_per_worker!r}")
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0" if dashboard else None,
        **cluster_kwargs,
    )
    client = Client(cluster)
    link = client.dashboard_link if dashboard else None
    message = f"creevey_dask: started a local cluster of {n_workers} worker process(es)" + (
        f"; dashboard: {link}" if link else ""
    )
    logger.info(message)
    if not quiet:
        print(message)
    return client
