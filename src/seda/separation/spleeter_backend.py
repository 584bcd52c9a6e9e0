"""Spleeter (Deezer, TensorFlow) voice separation, run in its own virtualenv.

Spleeter's pins (TensorFlow 2.12, numpy<2) cannot share seda's environment, so the work is done by
``spleeter_worker.py`` under the venv's interpreter (``seda setup spleeter`` creates it): one child
process per ``batch_size`` files, because TensorFlow start-up and checkpoint loading cost seconds.
Everything that can be checked without TensorFlow (venv, model folder, ffmpeg) is checked when the
backend is built, so a wrong setup fails in one sentence before any file is touched.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from tqdm.auto import tqdm

from seda.audio import FfmpegMissingError, find_ffmpeg
from seda.envs import SPLEETER_VERSION, env_python, spleeter_env_ready
from seda.errors import ConfigError
from seda.separation.common import Job, SeparationBackend, coerce_settings

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("spleeter_worker.py")
EMBEDDED_PREFIX = "spleeter:"
RELEASES_URL = "https://github.com/deezer/spleeter/releases"


@dataclass
class SpleeterSettings:
    backend: str = "spleeter"
    # The virtualenv made by `seda setup spleeter`.
    env: str = ".venvs/spleeter"
    # `spleeter:2stems` (any embedded config) or the path of a JSON config (locally trained model).
    model: str = "spleeter:2stems"
    # Spleeter's MODEL_PATH: where relative model folders (e.g. `2stems/`) are looked up.
    model_path: str = "pretrained_models"
    batch_size: int = 32
    # Sample rate of the written voice stems (mono PCM16).
    sample_rate: int = 44100
    # Files are streamed through the model in pieces of this length (bounded memory).
    chunk_seconds: float = 300.0


class SpleeterBackend(SeparationBackend):
    """Voice stems by a Spleeter model, a batch of files per child process."""

    name: ClassVar[str] = "spleeter"
    settings_class: ClassVar[type] = SpleeterSettings
    # The worker runs in its own venv (versions pinned by seda.envs); ffmpeg decodes and encodes.
    code = ("seda.separation.spleeter_backend", "seda.separation.spleeter_worker")
    packages = ("imageio-ffmpeg",)

    def __init__(self, settings: Any, workers: int | None = None) -> None:
        super().__init__(coerce_settings(SpleeterSettings, settings), workers)
        self.settings: SpleeterSettings
        if self.settings.batch_size < 1 or self.settings.chunk_seconds <= 0:
            raise ConfigError("separate.batch_size and separate.chunk_seconds must be positive")
        self.python = check_spleeter_env(self.settings.env)
        self.config, self.model_dir = check_spleeter_model(self.settings)
        try:
            self.ffmpeg = find_ffmpeg()
        except FfmpegMissingError as err:
            raise ConfigError(str(err)) from err

    def separate_batch(self, jobs: list[Job]) -> list[str | None]:
        errors: list[str | None] = []
        size = self.settings.batch_size
        with tqdm(total=len(jobs), desc="separate: spleeter", unit="file", disable=None) as bar:
            for start in range(0, len(jobs), size):
                errors += self._run_worker(jobs[start : start + size], bar)
        return errors

    def _run_worker(self, jobs: list[Job], bar: tqdm) -> list[str | None]:
        """One worker process over ``jobs``; per-job errors in job order."""
        request = {
            "model": self.config,
            "jobs": [[str(Path(a).resolve()), str(Path(b).resolve())] for a, b in jobs],
            "sample_rate": self.settings.sample_rate,
            "chunk_seconds": self.settings.chunk_seconds,
            "ffmpeg": self.ffmpeg,
        }
        env = {**os.environ, "MODEL_PATH": str(Path(self.settings.model_path).resolve())}
        errors: list[str | None] = [None] * len(jobs)
        reported: set[int] = set()
        fatal: dict[str, Any] | None = None
        with tempfile.TemporaryFile("w+") as stderr:
            proc = subprocess.Popen(
                [str(self.python), "-I", str(WORKER)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                text=True,
            )
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request))
            proc.stdin.close()
            for line in proc.stdout:
                record = _parse(line)
                if record is None:
                    continue
                if "fatal" in record:
                    fatal = record
                    continue
                errors[record["index"]] = record["error"]
                reported.add(record["index"])
                bar.update()
            code = proc.wait()
            stderr.seek(0)
            tail = _last_lines(stderr.read())
        if fatal and fatal.get("config"):
            raise ConfigError(f"Spleeter cannot start: {fatal['fatal']}")
        if len(reported) < len(jobs):
            reason = fatal["fatal"] if fatal else f"Spleeter worker exited with code {code}: {tail}"
            log.error("spleeter worker output:\n%s", tail)
            for i in set(range(len(jobs))) - reported:
                errors[i] = reason
            bar.update(len(jobs) - len(reported))
        return errors


def _parse(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return " | ".join(lines[-n:]) or "no output"


def check_spleeter_env(env: str | Path) -> Path:
    """The venv's interpreter, or a :class:`ConfigError` saying to run ``seda setup spleeter``."""
    if not spleeter_env_ready(env):
        raise ConfigError(
            f"no Spleeter {SPLEETER_VERSION} environment at {env}: run `seda setup spleeter` "
            "(it creates that virtualenv; Spleeter's TensorFlow/numpy<2 pins cannot share "
            "seda's environment)"
        )
    return env_python(env)


def check_spleeter_model(settings: SpleeterSettings) -> tuple[str, Path]:
    """(config descriptor for the worker, model folder), checking the checkpoint is on disk.

    Spleeter resolves a relative ``model_dir`` of the config under ``MODEL_PATH`` and, when the
    folder is missing, tries to download it from GitHub: offline that fails deep inside
    TensorFlow, so the folder is checked here instead.
    """
    model = settings.model
    if model.startswith(EMBEDDED_PREFIX):
        name = model[len(EMBEDDED_PREFIX) :]
        pattern = str(Path(settings.env) / "lib" / "python3*" / "site-packages" / "spleeter")
        found = sorted(glob.glob(str(Path(pattern) / "resources" / f"{name}.json")))
        if not found:
            raise ConfigError(
                f"separate.model {model!r}: Spleeter has no embedded configuration {name!r} "
                "(known: 2stems, 4stems, 5stems and their -16kHz variants)"
            )
        config_file, descriptor = Path(found[0]), model
    else:
        config_file = Path(model)
        if not config_file.is_file():
            raise ConfigError(
                f"separate.model {model!r}: no such Spleeter JSON configuration (give "
                "`spleeter:2stems` or the path of a trained model's config.json)"
            )
        descriptor = str(config_file.resolve())
    try:
        params = json.loads(config_file.read_text())
        model_dir = Path(params["model_dir"])
        instruments = params["instrument_list"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{config_file}: not a Spleeter configuration ({err})") from err
    if "vocals" not in instruments:
        raise ConfigError(f"separate.model {model!r} has no 'vocals' stem ({instruments})")
    if not model_dir.is_absolute():
        model_dir = Path(settings.model_path).resolve() / model_dir
    if not (model_dir / "checkpoint").is_file():
        raise ConfigError(
            f"Spleeter model {model!r} not found: no checkpoint in {model_dir}; Spleeter "
            f"downloads pretrained models only with internet access, so unpack "
            f"{model_dir.name}.tar.gz from {RELEASES_URL} there or set separate.model_path to "
            "the folder holding a local copy"
        )
    return descriptor, model_dir
