"""Fixtures shared by the engine's tests: Dask clusters for ``"executor": "cluster"``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def _local_cluster() -> Iterator[str]:
    """A LocalCluster of 2 in-process workers (2 threads each): its scheduler's address."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=False, protocol="tcp",
                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """A cluster shared by a module's tests (see :func:`_local_cluster`)."""
    yield from _local_cluster()


@pytest.fixture
def own_scheduler() -> Iterator[str]:
    """A cluster for one test (work left running on it does not slow the others)."""
    yield from _local_cluster()
