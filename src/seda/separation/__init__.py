"""Voice separation: turn a mixture (speech over a music bed) into a voice stem.

Modules: :mod:`~seda.separation.common` (the backend contract and chunked streaming),
:mod:`~seda.separation.repet` (REPET-SIM, weight-free), :mod:`~seda.separation.demucs_backend`,
:mod:`~seda.separation.spleeter_backend` (model-based), :mod:`~seda.separation.backends` (the
registry that picks one by ``separate.backend``), :mod:`~seda.separation.manifest` (a whole
manifest through the per-file cache) and :mod:`~seda.separation.quality` (SI-SDR). Import what
you use from its module: this package's ``__init__`` imports nothing, so that code using one
backend does not depend on the others.
"""
