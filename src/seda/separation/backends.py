"""The separation backends by name (``separate.backend``) and the settings each one reads."""

from __future__ import annotations

from typing import Any

from seda.audio import audio_info
from seda.config import build
from seda.errors import ConfigError
from seda.separation.common import Job, SeparationBackend, run_per_file
from seda.separation.demucs_backend import DemucsBackend
from seda.separation.repet import RepetBackend, SeparateSettings
from seda.separation.spleeter_backend import SpleeterBackend


class NoSeparation(SeparationBackend):
    """No separation: inputs are only checked to be readable audio (header only, cheap)."""

    name = "none"
    writes_audio = False
    settings_class = SeparateSettings

    def separate_batch(self, jobs: list[Job]) -> list[str | None]:
        return run_per_file(_check_readable, jobs, workers=1, desc="separate: check")


def _check_readable(job: Job) -> None:
    audio_info(job[0])


BACKENDS: dict[str, type[SeparationBackend]] = {
    cls.name: cls for cls in (NoSeparation, RepetBackend, SpleeterBackend, DemucsBackend)
}


def make_backend(settings: Any, workers: int | None = None) -> SeparationBackend:
    """The backend named by ``separate.backend``; an unknown name is a :class:`ConfigError`."""
    cls = BACKENDS.get(settings.backend)
    if cls is None:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigError(
            f"unknown separate.backend {settings.backend!r}: known backends are {known}"
        )
    return cls(settings, workers)


def settings_for(section: dict[str, Any] | None) -> Any:
    """Build the settings class of the backend the section names (each backend has its own keys)."""
    section = dict(section or {})
    cls = BACKENDS.get(section.get("backend", SeparateSettings.backend))
    return build(getattr(cls, "settings_class", SeparateSettings), section, "separate")
