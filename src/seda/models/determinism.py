"""Same inputs, same code, same settings: same numbers. Seeds, deterministic kernels, threads.

Torch picks the fastest kernel by default, and some of them (CUDA scatter/atomics, cuBLAS split-K
reductions) add in a different order from run to run. :func:`deterministic_torch` asks for the
deterministic ones (warning where an operation has none); the CPU thread count is fixed where a
result depends on it (a reduction split over n threads sums in another order).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def deterministic_torch() -> None:
    """Deterministic torch kernels from here on (cuBLAS needs its workspace size fixed first).

    ``set_deterministic_debug_mode("warn")`` sets the same kernel flag as
    ``use_deterministic_algorithms(True, warn_only=True)`` without that function's import of
    torch's compiler (``torch._inductor``, about 2 s a process), which only matters to
    ``torch.compile`` and seda compiles nothing.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_deterministic_debug_mode("warn")
    torch.backends.cudnn.benchmark = False


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's global generator and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block on ``n`` CPU threads (then restore): a probe's small matrices gain nothing
    from more threads, spinning threads slow it down badly when the cores are shared, and a
    fixed count keeps its sums in one order on every machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
