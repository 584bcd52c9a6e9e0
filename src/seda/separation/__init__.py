"""Model-based voice separation backends for the ``separate`` stage (Spleeter, Demucs).

Each backend follows :class:`seda.stages.separate.SeparationBackend`'s contract (``name``,
``writes_audio``, ``__init__(settings, workers)``, ``separate_batch(jobs) -> errors``) and carries
its own settings dataclass as ``settings_class`` (keys = ``conf/separate/<name>.yaml``). They do
not import the stage module, so the stage can import them without an import cycle (also when it
runs as ``python -m seda.stages.separate``).
"""

from seda.separation.common import coerce_settings, stream_separate
from seda.separation.demucs_backend import DemucsBackend, DemucsSettings
from seda.separation.spleeter_backend import SpleeterBackend, SpleeterSettings

__all__ = [
    "DemucsBackend",
    "DemucsSettings",
    "SpleeterBackend",
    "SpleeterSettings",
    "coerce_settings",
    "stream_separate",
]
