"""Peak memory of a process tree (a process and all its descendants), sampled with psutil.

Both sums are reported: RSS counts the pages a process shares with others (libraries, a
forkserver's copy-on-write pages) once per process, so its sum overstates the memory in use;
PSS divides each shared page among the processes mapping it, so its sum is what the tree costs
the machine. RSS is read every ``interval`` (cheap); PSS at most once a second, since reading
it walks a process's page tables (about 18 ms for a process with torch loaded: every 50 ms for
five processes would take both cores of a small machine away from what is measured).
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass

import psutil

MIB = 1 << 20


@dataclass
class TreePeak:
    rss: int = 0  # bytes, the largest sum over the tree's processes seen in one sample
    pss: int = 0
    processes: int = 0  # the most processes seen in one sample
    cpu_root: float = 0.0  # CPU seconds (user + system) of the command's own process
    cpu_all: float = 0.0  # of every process of the tree, as last seen

    def __str__(self) -> str:
        return (
            f"peak RSS {self.rss / MIB:.0f} MiB, PSS {self.pss / MIB:.0f} MiB "
            f"(summed over up to {self.processes} processes)"
        )


PSS_INTERVAL = 1.0


def _sample(root: psutil.Process, pss: bool, cpu: dict[int, float]) -> tuple[int, int, int]:
    """Summed RSS, summed PSS (0 when not asked) and number of processes of the tree; each
    process's CPU seconds into ``cpu``."""
    total_rss = total_pss = n = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            info = proc.memory_full_info() if pss else proc.memory_info()
            times = proc.cpu_times()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        cpu[proc.pid] = times.user + times.system
        total_rss += info.rss
        total_pss += getattr(info, "pss", info.rss) if pss else 0
        n += 1
    return total_rss, total_pss, n


def run_measured(cmd: list[str], interval: float = 0.05, **kwargs: object) -> tuple[str, TreePeak]:
    """Run ``cmd`` (its stdout captured) while sampling its process tree every ``interval`` s."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, **kwargs)  # type: ignore[call-overload]
    peak = TreePeak()
    stop = threading.Event()

    def watch() -> None:
        root = psutil.Process(proc.pid)
        last_pss = 0.0
        cpu: dict[int, float] = {}
        while not stop.is_set():
            with_pss = time.monotonic() - last_pss >= PSS_INTERVAL
            last_pss = time.monotonic() if with_pss else last_pss
            try:
                rss, pss, n = _sample(root, with_pss, cpu)
            except psutil.NoSuchProcess:
                return
            peak.rss, peak.pss = max(peak.rss, rss), max(peak.pss, pss)
            peak.processes = max(peak.processes, n)
            peak.cpu_root, peak.cpu_all = cpu.get(proc.pid, 0.0), sum(cpu.values())
            time.sleep(interval)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    stop.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed with exit status {proc.returncode}")
    return out, peak
