"""Cutting recordings into clean speech clips (the clean stage's library; predict uses it too).

:mod:`~seda.segment.vad` finds speech, :mod:`~seda.segment.denoise` removes stationary and
non-stationary noise, :mod:`~seda.segment.loudness` measures and sets levels,
:mod:`~seda.segment.clips` turns one file into clips and clip rejects (streamed, bounded memory),
:mod:`~seda.segment.manifest` does a whole manifest through the per-file cache. This
``__init__`` imports nothing, so each module's users depend on that module only.
"""
