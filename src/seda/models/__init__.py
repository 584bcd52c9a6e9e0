"""Emotion classifiers on the stored features: heads, folds, training, the baseline, model cards
and loading a trained model back (:mod:`.loading`)."""
