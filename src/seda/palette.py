"""One colour per label, the same in every figure and table seda draws.

Common emotion names keep fixed colours (``angry`` is always red, ``sad`` blue, ...); any other
label gets the next colour of matplotlib's tab10, then tab20, that no label of the set uses yet,
then evenly spaced hues. Within one label set every label has its own colour.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence

# Fixed colours of common emotion names (and their usual spellings), lower case.
EMOTION_COLOURS = {
    "angry": "#d62728",
    "anger": "#d62728",
    "happy": "#f0b400",
    "happiness": "#f0b400",
    "joy": "#f0b400",
    "sad": "#1f77b4",
    "sadness": "#1f77b4",
    "calm": "#2ca02c",
    "neutral": "#8c8c8c",
    "fear": "#9467bd",
    "fearful": "#9467bd",
    "surprise": "#e377c2",
    "surprised": "#e377c2",
    "disgust": "#8c564b",
    "excited": "#ff7f0e",
    "frustrated": "#bcbd22",
}
# Where nothing was predicted or no speech was found.
NO_LABEL_COLOUR = "#c9c9c9"


def label_colours(labels: Sequence[str]) -> dict[str, str]:
    """A distinct ``#rrggbb`` colour per label, stable for a given label set and order."""
    fixed: dict[str, str] = {}
    for label in labels:  # a fixed colour goes to the first label that claims it
        colour = EMOTION_COLOURS.get(label.lower())
        if colour is not None and label not in fixed and colour not in fixed.values():
            fixed[label] = colour
    taken = set(fixed.values())
    spare = (c for c in _spare_colours() if c not in taken)
    out: dict[str, str] = {}
    for label in labels:
        if label not in out:
            out[label] = fixed[label] if label in fixed else next(spare)
    return out


def _spare_colours() -> Iterator[str]:
    """tab10, then the rest of tab20, then endless golden-angle hues; no colour twice."""
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb, to_hex

    seen: set[str] = set()
    tab = [to_hex(colormaps["tab10"](i)) for i in range(10)]
    tab += [to_hex(colormaps["tab20"](i)) for i in range(20)]
    hues = (
        to_hex(hsv_to_rgb(((0.618033988749895 * n) % 1.0, 0.65, 0.85 - 0.25 * (n % 2))))
        for n in itertools.count()
    )
    for colour in itertools.chain(tab, hues):
        if colour not in seen:
            seen.add(colour)
            yield colour
