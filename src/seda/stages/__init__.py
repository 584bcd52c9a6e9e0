"""One thin module per dvc.yaml stage: read settings, call the library, write outputs."""
