"""Speaker- and video-independent train/val/test splits and cross-validation folds.

Emotion models learn speaker and recording identity all too easily, so a split that lets a
speaker (or two clips of one video) appear on both sides reports inflated scores. Rows are
therefore grouped into connected components of speaker and source_id, and whole groups are
assigned to splits; within that constraint the test and validation groups are chosen so that their
label proportions come as close as possible to the overall ones. Folds are leave-one-group-out
(optionally packed into ``max_folds`` folds of similar size).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from seda.errors import ConfigError
from seda.records import UNKNOWN_SPEAKER, UNLABELLED

log = logging.getLogger(__name__)

GROUP_BY = ("speaker", "source", "speaker+source")
SPLITS = ("train", "val", "test")
# Candidate group sets whose label-mix distance is within this of the best one are equally good;
# the seed picks among them (so different seeds give different, equally balanced splits).
TOLERANCE = 0.02
# Above this many group combinations, a seeded random sample of this size is scored instead.
MAX_CANDIDATES = 20000


@dataclass
class SplitSettings:
    """The ``split`` section."""

    # speaker, source, or speaker+source (connected groups: no speaker and no video in two splits)
    group_by: str = "speaker+source"
    val_groups: int = 1
    test_groups: int = 1
    # Leave-one-group-out folds; None = one fold per group, else at most this many folds.
    max_folds: int | None = None


def check_settings(settings: SplitSettings) -> None:
    """ConfigError naming the setting when one cannot work."""
    if settings.group_by not in GROUP_BY:
        raise ConfigError(
            f"split.group_by {settings.group_by!r} is not one of {', '.join(GROUP_BY)}"
        )
    for name in ("val_groups", "test_groups"):
        value = getattr(settings, name)
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"split.{name} must be a whole number >= 0, got {value!r}")
    if settings.max_folds is not None and (
        not isinstance(settings.max_folds, int) or settings.max_folds < 2
    ):
        raise ConfigError(f"split.max_folds must be null or >= 2, got {settings.max_folds!r}")


def group_rows(rows: Sequence[Mapping[str, Any]], group_by: str) -> list[str]:
    """Group name per row: connected components of the row's speaker and/or source_id.

    A row lacking the grouping key(s) falls back to its source_id, then to its own clip, so it is
    never merged with unrelated rows by an empty string.
    """
    use_speaker = group_by in ("speaker", "speaker+source")
    use_source = group_by in ("source", "speaker+source")
    nodes: dict[tuple[str, str], int] = {}
    edges: list[tuple[int, int]] = []
    fallback = 0

    def node(kind: str, value: str) -> int:
        return nodes.setdefault((kind, value), len(nodes))

    for row in rows:
        keys = []
        if use_speaker and row.get("speaker"):
            keys.append(node("speaker", row["speaker"]))
        if use_source and row.get("source_id"):
            keys.append(node("source", row["source_id"]))
        if not keys:
            fallback += 1
            if row.get("source_id"):
                keys.append(node("source", row["source_id"]))
            else:
                keys.append(node("clip", row["clip_id"]))
        edges.append((keys[0], keys[-1]))
    if fallback:
        log.warning(
            "split: %d clip(s) lack a %s; grouped by source_id or alone", fallback, group_by
        )
    n = len(nodes)
    src, dst = zip(*edges, strict=True) if edges else ((), ())
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # Name components by their smallest member so names do not depend on row order.
    first: dict[int, tuple[str, str]] = {}
    for key, idx in nodes.items():
        comp = int(component[idx])
        first[comp] = min(first.get(comp, key), key)
    order = sorted(first, key=first.__getitem__)
    width = max(2, len(str(len(order) - 1)))
    names = {comp: f"g{i:0{width}d}" for i, comp in enumerate(order)}
    return [names[int(component[a])] for a, _ in edges]


def _label_table(
    labels: Sequence[str], groups: Sequence[str]
) -> tuple[list[str], list[str], np.ndarray]:
    """(group names, labels, counts[group, label]) over the labelled clips.

    Clips without an emotion label take part in grouping but not in stratification."""
    group_names = sorted(set(groups))
    label_names = sorted({lab for lab in labels if lab != UNLABELLED})
    gi = {g: i for i, g in enumerate(group_names)}
    li = {lab: i for i, lab in enumerate(label_names)}
    table = np.zeros((len(group_names), len(label_names)))
    for lab, grp in zip(labels, groups, strict=True):
        if lab in li:
            table[gi[grp], li[lab]] += 1
    return group_names, label_names, table


def check_feasible(
    group_names: Sequence[str],
    label_names: Sequence[str],
    table: np.ndarray,
    settings: SplitSettings,
) -> None:
    """Every label must be carried by enough groups to appear in test, val and train."""
    need = settings.test_groups + settings.val_groups + 1
    if len(group_names) < need:
        raise ConfigError(
            f"only {len(group_names)} group(s) with group_by={settings.group_by}; "
            f"test_groups={settings.test_groups} + val_groups={settings.val_groups} + 1 for "
            f"train need at least {need}"
        )
    carriers = (table > 0).sum(axis=0)
    short = [
        f"{lab!r} has {int(n)}" for lab, n in zip(label_names, carriers, strict=True) if n < need
    ]
    if short:
        raise ConfigError(
            f"too few groups (group_by={settings.group_by}) carry label(s): "
            f"{', '.join(short)}; each needs at least {need} (test_groups={settings.test_groups}"
            f" + val_groups={settings.val_groups} + 1 for train)"
        )


def _candidates(pool: list[int], k: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    if math.comb(len(pool), k) <= MAX_CANDIDATES:
        combos = list(itertools.combinations(pool, k))
        rng.shuffle(combos)  # type: ignore[arg-type]
        return combos
    seen: set[tuple[int, ...]] = set()
    for _ in range(MAX_CANDIDATES):
        seen.add(tuple(sorted(rng.choice(pool, size=k, replace=False).tolist())))
    return sorted(seen)


def _choose_groups(
    pool: list[int], k: int, table: np.ndarray, leave_carriers: int, rng: np.random.Generator
) -> list[int]:
    """Pick ``k`` groups of ``pool`` whose label mix is closest to the overall one.

    Ranked by: labels left with fewer than ``leave_carriers`` carrying groups in the rest of the
    pool, labels missing from the pick, then label-share distance (total variation) plus the
    deviation of the pick's clip share from its group share; the seed picks among near-ties.
    """
    if k == 0:
        return []
    overall = table.sum(axis=0)
    overall_share = overall / max(overall.sum(), 1)
    pool_carriers = (table[pool] > 0).sum(axis=0)
    total = table[pool].sum()
    scored = []
    for combo in _candidates(pool, k, rng):
        chosen = table[list(combo)]
        counts = chosen.sum(axis=0)
        left = pool_carriers - (chosen > 0).sum(axis=0)
        short = int(np.maximum(leave_carriers - left, 0).sum())
        missing = int(((counts == 0) & (overall > 0)).sum())
        share = counts / max(counts.sum(), 1)
        distance = 0.5 * float(np.abs(share - overall_share).sum())
        size = abs(counts.sum() / max(total, 1) - k / len(pool))
        scored.append(((short, missing), distance + size, combo))
    best_rank = min(s[0] for s in scored)
    ranked = [s for s in scored if s[0] == best_rank]
    best = min(s[1] for s in ranked)
    near = [s[2] for s in ranked if s[1] <= best + TOLERANCE]
    return list(near[int(rng.integers(len(near)))])


def fold_of_groups(
    group_names: Sequence[str], sizes: Mapping[str, int], max_folds: int | None
) -> dict[str, int]:
    """Leave-one-group-out fold per group; with ``max_folds``, groups are packed into that many
    folds, largest first into the currently smallest fold, so folds have similar clip counts."""
    names = sorted(group_names)
    if max_folds is None or max_folds >= len(names):
        return {g: i for i, g in enumerate(names)}
    load = [0] * max_folds
    folds: dict[str, int] = {}
    for g in sorted(names, key=lambda g: (-sizes[g], g)):
        fold = min(range(max_folds), key=lambda f: (load[f], f))
        folds[g] = fold
        load[fold] += sizes[g]
    return folds


def speaker_grouped_split(
    rows: Sequence[Mapping[str, Any]], settings: SplitSettings, seed: int
) -> list[dict[str, Any]]:
    """Rows of ``splits.csv`` (the fields of :class:`seda.records.SplitRow`, sorted by clip_id):
    whole groups go to test, val or train."""
    check_settings(settings)
    rows = sorted(rows, key=lambda r: r["clip_id"])
    if "speaker" in settings.group_by and {r.get("speaker") for r in rows} == {UNKNOWN_SPEAKER}:
        raise ConfigError(
            f"every clip's speaker is {UNKNOWN_SPEAKER!r}, so split.group_by="
            f"{settings.group_by} makes one group: name the speakers (a (?P<speaker>...) group "
            "in dataset.pattern or a speaker column in dataset.labels_csv), or split by "
            "recording with split.group_by=source (one speaker may then be in train and test)"
        )
    groups = group_rows(rows, settings.group_by)
    labels = [r.get("label", "") for r in rows]
    group_names, label_names, table = _label_table(labels, groups)
    check_feasible(group_names, label_names, table, settings)
    rng = np.random.default_rng(seed)
    pool = list(range(len(group_names)))
    test = _choose_groups(pool, settings.test_groups, table, settings.val_groups + 1, rng)
    pool = [g for g in pool if g not in test]
    val = _choose_groups(pool, settings.val_groups, table, 1, rng)
    split_of = {g: "train" for g in group_names}
    split_of.update({group_names[i]: "test" for i in test})
    split_of.update({group_names[i]: "val" for i in val})
    folds = fold_of_groups(group_names, Counter(groups), settings.max_folds)
    return [
        {
            "clip_id": r["clip_id"],
            "path": r["path"],
            "label": r.get("label", ""),
            "speaker": r.get("speaker", ""),
            "source_id": r.get("source_id", ""),
            "group": g,
            "split": split_of[g],
            "fold": folds[g],
        }
        for r, g in zip(rows, groups, strict=True)
    ]


def summarize(out_rows: Sequence[Mapping[str, Any]], settings: SplitSettings, seed: int) -> dict:
    """``summary.json``: clips per split and label, groups per split, clips per fold, members."""
    counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    groups: dict[str, set[str]] = defaultdict(set)
    members: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for r in out_rows:
        counts[r["split"]][r["label"]] += 1
        groups[r["split"]].add(r["group"])
        members[r["group"]]["speakers"].add(r["speaker"])
        members[r["group"]]["sources"].add(r["source_id"])
    fold_sizes = Counter(int(r["fold"]) for r in out_rows)
    return {
        "group_by": settings.group_by,
        "seed": seed,
        "clips": len(out_rows),
        "groups": len(members),
        "folds": len(fold_sizes),
        "counts": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "groups_per_split": {s: sorted(groups[s]) for s in counts},
        "clips_per_fold": {str(f): n for f, n in sorted(fold_sizes.items())},
        "group_members": {
            g: {"speakers": sorted(m["speakers"] - {""}), "sources": len(m["sources"] - {""})}
            for g, m in sorted(members.items())
        },
    }
