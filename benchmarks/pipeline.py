"""A fresh-clone demo ``dvc repro``: total wall time and the time of each stage, in one run.

The repository's current commit is cloned (``git clone``) into a temporary folder, so nothing
of this checkout's data, DVC cache or per-file caches is reused; ``--overlay FILE ...`` copies
the named files of this working tree over the clone (``--worktree``: every file ``git status``
lists as changed or new), to time work that is not committed yet. ``dvc repro`` then runs in the
clone with ``PYTHONPATH`` at the clone's ``src`` (the stages import the clone's seda, checked
before the run). Each output line is time-stamped; a stage's time runs from its "Running stage"
line to the next one (or the end), so the breakdown adds up to the total less DVC's start-up.
Caches outside the repository (model weights of torch/HuggingFace) are the machine's own.

Printed: the wall time, the CPU time of the whole process tree, the load average before and
after (other jobs on a shared machine lengthen the wall time; the CPU time is less affected),
each stage's seconds and share, and PASS or FAIL against issue #12's goal (<= 90 s on 2 cores).
Exits 0 always (it reports; ``dvc repro`` failing prints FAIL with the tail of its output).

    python benchmarks/pipeline.py [--overlay FILE ... | --worktree] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 90.0
STAGE_LINE = re.compile(r"Running stage '([^']+)'")


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def changed_files() -> list[str]:
    """Tracked files that differ from HEAD and untracked, not ignored files of this checkout."""
    names = git("ls-files", "--modified", "--others", "--exclude-standard").splitlines()
    return sorted({n for n in names if (ROOT / n).is_file()})


def overlay(clone: Path, files: list[str]) -> None:
    for name in files:
        src = ROOT / name
        if not src.is_file():
            raise FileNotFoundError(f"--overlay: {name} is not a file of this checkout")
        dst = clone / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def run_repro(clone: Path) -> tuple[int, float, list[tuple[float, str]]]:
    """``dvc repro`` in ``clone``: exit code, wall seconds and (seconds since start, line)."""
    env = {**os.environ, "PYTHONPATH": str(clone / "src"), "PYTHONUNBUFFERED": "1"}
    where = subprocess.run(
        [sys.executable, "-c", "import seda; print(seda.__file__)"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).resolve().is_relative_to(clone.resolve()):
        raise RuntimeError(f"the clone's stages would import seda from {where}")
    lines: list[tuple[float, str]] = []
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["dvc", "repro"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - start, line.rstrip()))
    code = proc.wait()
    return code, time.perf_counter() - start, lines


def stage_times(lines: list[tuple[float, str]], total: float) -> list[tuple[str, float]]:
    starts = [(t, m.group(1)) for t, line in lines if (m := STAGE_LINE.search(line))]
    ends = [t for t, _ in starts[1:]] + [total]
    return [(name, end - t) for (t, name), end in zip(starts, ends, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--overlay", nargs="+", default=[], help="working-tree files to copy in")
    group.add_argument("--worktree", action="store_true", help="copy in every changed file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clone")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="seda_pipeline_"))
    try:
        clone = tmp / "repo"
        head = git("rev-parse", "--short", "HEAD").strip()
        git("clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone), cwd=tmp)
        files = changed_files() if args.worktree else args.overlay
        overlay(clone, files)
        load_before = os.getloadavg()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        code, total, lines = run_repro(clone)
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_after = os.getloadavg()
    except Exception as err:  # a benchmark reports; it does not fail the caller
        print(f"FAIL: the benchmark did not run: {type(err).__name__}: {err}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    print(f"fresh clone of {head}" + (f" with {len(files)} working-tree file(s)" if files else ""))
    for name in files:
        print(f"  overlay: {name}")
    print(f"cores: {os.cpu_count()}; load average (1 min) before {load_before[0]:.2f}, ")
    print(f"after {load_after[0]:.2f}" + (f"; clone kept at {tmp}" if args.keep else ""))
    if code != 0:
        print("\n".join(line for _, line in lines[-40:]))
        print(f"FAIL: dvc repro exited {code} after {total:.1f} s")
        return 0
    stages = stage_times(lines, total)
    print("\n| stage | wall (s) | share |")
    print("|---|---:|---:|")
    for name, seconds in stages:
        print(f"| {name} | {seconds:.1f} | {seconds / total:.0%} |")
    first = min((t for t, line in lines if STAGE_LINE.search(line)), default=total)
    print(f"| (DVC start-up before the first stage) | {first:.1f} | {first / total:.0%} |")
    print(f"| **total** | **{total:.1f}** | 100% |")
    print(f"\nCPU time of the process tree: {cpu:.1f} s ({cpu / total:.2f} cores busy on average)")
    verdict = "PASS" if total <= GOAL_SECONDS else "FAIL"
    print(f"{verdict}: fresh-clone demo dvc repro {total:.1f} s (goal <= {GOAL_SECONDS:g} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
