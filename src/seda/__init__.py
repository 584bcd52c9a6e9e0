"""seda: Speech Emotion Detection and Analysis.

A reproducible DVC + Hydra pipeline: collect speech, separate voice from music, clean, split by
speaker, and compare self-supervised speech models for emotion recognition.
"""

__version__ = "0.1.0"
