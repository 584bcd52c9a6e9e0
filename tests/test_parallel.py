"""seda.parallel: how many workers, one thread each, items handed out only as workers free up."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from seda import parallel
from seda.parallel import map_files, worker_count

GIB = 1 << 30


def test_worker_count_follows_cores_items_and_memory() -> None:
    assert worker_count(0, 100, cores=8, available=64 * GIB, per_worker=GIB) == 8
    assert worker_count(None, 3, cores=8, available=64 * GIB, per_worker=GIB) == 3
    assert worker_count(0, 100, cores=8, available=5 * GIB + 1, per_worker=GIB) == 5
    # an explicit request may exceed the cores, not the memory
    assert worker_count(12, 100, cores=8, available=64 * GIB, per_worker=GIB) == 12
    assert worker_count(12, 100, cores=8, available=3 * GIB, per_worker=GIB) == 3
    # never fewer than one, even with no items or no memory to spare; unknown memory: no cap
    assert worker_count(0, 0, cores=8, available=64 * GIB, per_worker=GIB) == 1
    assert worker_count(4, 100, cores=8, available=GIB // 2, per_worker=GIB) == 1
    assert worker_count(0, 100, cores=8, available=None, per_worker=GIB) == 8


def test_a_worker_limits_the_libraries_loaded_before_it_started() -> None:
    """The parent's __main__ (so numpy's BLAS and torch) is loaded in a worker before its
    initializer runs: environment variables are too late for them, the initializer is not."""
    code = (
        "import numpy, torch\n"
        "from threadpoolctl import threadpool_info\n"
        "from seda.parallel import _init_worker\n"
        "before = max(i['num_threads'] for i in threadpool_info())\n"
        "_init_worker()\n"
        "after = [i['num_threads'] for i in threadpool_info()]\n"
        "print(before, max(after), torch.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "3"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    before, after, torch_threads = map(int, out.stdout.split())
    assert before > 1 or os.cpu_count() == 1  # the libraries did start with more threads
    assert after == 1 and torch_threads == 1


def _square(x: int) -> int:
    if x == 3:
        raise ValueError("three is bad")
    return x * x


def test_items_are_handed_out_only_as_workers_free_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """At most two items per worker are submitted at a time (the parent holds no more inputs or
    results than that); every item still comes back once, a failure as an error."""
    submitted: list[int] = []
    real_submit = parallel.ProcessPoolExecutor.submit

    def counting_submit(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        submitted.append(args[1])
        return real_submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(parallel.ProcessPoolExecutor, "submit", counting_submit)
    outcomes = map_files(_square, list(range(20)), workers=2, known_errors=(ValueError,))
    first = next(outcomes)
    assert len(submitted) <= 4
    rest = [first, *outcomes]
    assert sorted(o.item for o in rest) == list(range(20)) == sorted(submitted)
    assert {o.item: o.result for o in rest if o.error is None} == {
        x: x * x for x in range(20) if x != 3
    }
    assert [o.error for o in rest if o.error is not None] == ["three is bad"]


def test_fewer_workers_when_memory_is_short(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(parallel, "available_memory", lambda: GIB)
    with caplog.at_level(logging.WARNING, logger="seda.parallel"):
        pids = {o.result for o in map_files(_pid, range(3), workers=3, worker_memory=GIB)}
    assert pids == {os.getpid()}  # one worker: this process
    assert "1 worker(s), not 3" in caplog.text


def _pid(_: int) -> int:
    return os.getpid()
