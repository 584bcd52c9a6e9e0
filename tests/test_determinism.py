"""seda.models.determinism: deterministic kernels, without paying for torch's compiler."""

from __future__ import annotations

import subprocess
import sys


def test_deterministic_torch_sets_the_kernel_flag_without_importing_the_compiler() -> None:
    # A fresh interpreter: another test may already have imported torch._inductor here.
    code = (
        "import sys, torch\n"
        "from seda.models.determinism import deterministic_torch\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "deterministic_torch()\n"
        "print(torch.are_deterministic_algorithms_enabled(),"
        " torch.is_deterministic_algorithms_warn_only_enabled(),"
        " 'torch._inductor' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "True", "False"]
