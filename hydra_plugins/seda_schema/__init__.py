"""seda's configuration schema for Hydra, found by plugin discovery.

`dvc exp run` composes conf/ in DVC's own process, which never imports seda; Hydra's plugin
discovery does import every module under `hydra_plugins/` (DVC points it at the repository
root), so registering the schema here makes DVC's composition check types, keys and ranges.
"""

from seda.schema import register

register()
