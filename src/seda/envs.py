"""Isolated virtual environments for tools whose pins clash with the project's own.

Spleeter 2.4.2 pins TensorFlow 2.12 (numpy<2, pandas<2, Python<3.12) and so cannot share the
project's environment (numpy 2); it lives in its own venv and is driven through a child process
(:mod:`seda.separation.spleeter_backend`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from seda.io import write_text_atomic

log = logging.getLogger(__name__)

SPLEETER_VERSION = "2.4.2"
SPLEETER_ENV = Path(".venvs/spleeter")
SPLEETER_MARKER = ".seda-spleeter"
# TensorFlow 2.12.1, which spleeter 2.4.2 pins, has wheels for CPython 3.8-3.11 only.
SPLEETER_PYTHONS = ((3, 8), (3, 9), (3, 10), (3, 11))


class EnvError(RuntimeError):
    """An environment that cannot be created or used; the message says what to do."""


def env_python(env: str | Path) -> Path:
    """The interpreter inside venv ``env`` (POSIX or Windows layout)."""
    env = Path(env)
    posix = env / "bin" / "python"
    return posix if posix.exists() or sys.platform != "win32" else env / "Scripts" / "python.exe"


def spleeter_env_ready(env: str | Path) -> bool:
    """True when ``env`` holds a finished ``seda setup spleeter`` install of the pinned version."""
    marker = Path(env) / SPLEETER_MARKER
    return (
        env_python(env).exists()
        and marker.exists()
        and marker.read_text().strip() == (f"spleeter=={SPLEETER_VERSION}")
    )


def python_version(python: str | Path) -> tuple[int, int]:
    """(major, minor) of an interpreter, asking it directly."""
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise EnvError(f"cannot run Python interpreter {python}: {err}") from err
    major, minor = out.split()
    return int(major), int(minor)


def _pick_python(python: str | Path | None) -> str:
    """The interpreter to build the venv from: ``python``, else this one or a python3.11 on PATH."""
    if python is not None:
        candidates = [str(python)]
    else:
        candidates = [
            sys.executable,
            *filter(None, (shutil.which(f"python3.{m}") for m in (11, 10))),
        ]
    for candidate in candidates:
        if python_version(candidate) in SPLEETER_PYTHONS:
            return candidate
    found = ", ".join(f"{c} is {'.'.join(map(str, python_version(c)))}" for c in candidates)
    raise EnvError(
        f"Spleeter {SPLEETER_VERSION} needs Python 3.8-3.11 (TensorFlow 2.12 has no wheels for "
        f"newer versions) but {found}: install Python 3.11 and pass it, e.g. "
        "`seda setup spleeter --python /usr/bin/python3.11`"
    )


def create_spleeter_env(path: Path = SPLEETER_ENV, python: str | Path | None = None) -> Path:
    """Create (or reuse) a venv at ``path`` with ``spleeter==2.4.2``; return its interpreter.

    Idempotent: a marker file written after a successful install makes a rerun return at once; an
    interrupted install is simply resumed by pip. pip's own progress is shown on the console.
    """
    path = Path(path)
    if spleeter_env_ready(path):
        log.info("spleeter environment already set up at %s", path)
        return env_python(path)
    venv_python = env_python(path)
    if venv_python.exists():
        version = python_version(venv_python)
        if version not in SPLEETER_PYTHONS:
            raise EnvError(
                f"{path} is a Python {version[0]}.{version[1]} venv but Spleeter needs 3.8-3.11: "
                f"delete {path} and rerun with a Python 3.11 interpreter"
            )
    else:
        base = _pick_python(python)
        log.info("creating virtual environment %s with %s", path, base)
        _run([base, "-m", "venv", str(path)])
    log.info("installing spleeter==%s into %s (TensorFlow: a few minutes)", SPLEETER_VERSION, path)
    _run([str(venv_python), "-m", "pip", "install", f"spleeter=={SPLEETER_VERSION}"])
    write_text_atomic(path / SPLEETER_MARKER, f"spleeter=={SPLEETER_VERSION}\n")
    return venv_python


def _run(cmd: list[str]) -> None:
    """Run a command with its output on the console (pip's progress), failing with one message."""
    proc = subprocess.run(cmd, check=False)
    if proc.returncode != 0:
        raise EnvError(f"command failed with exit code {proc.returncode}: {' '.join(cmd)}")
