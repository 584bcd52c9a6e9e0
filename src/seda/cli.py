"""The `seda` command: what a person runs by hand (DVC runs the stage modules directly)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from seda.config import load_params
from seda.errors import ConfigError
from seda.logs import setup_logging

# Commands with their own argument parsers: everything after the name is theirs.
PASSTHROUGH = {
    "predict": "seda.predict",
    "review": "seda.review",
    "label": "seda.pseudolabel",
    "report": "seda.pr_report",
    "experiments": "seda.experiments",
}


def stage_names() -> list[str]:
    """The stage modules, read off the folder (the CLI runs them by name, never imports them
    here: nothing outside stages/ imports stages/)."""
    from pathlib import Path

    folder = Path(__file__).parent / "stages"
    return sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")


def _compose(args: argparse.Namespace) -> int:
    from seda.schema import compose, write_params

    params = compose(args.overrides)
    write_params(params, args.output)
    print(f"wrote {args.output} from conf/ with overrides {args.overrides or 'none'}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from seda.schema import check_params, compose

    actual = load_params(args.params)
    check_params(actual)
    expected = compose(args.overrides)
    if expected != actual:
        diff = sorted(k for k in set(expected) | set(actual) if expected.get(k) != actual.get(k))
        print(
            f"{args.params} differs from the composition of conf/ in: {', '.join(diff)}. "
            "Run `seda compose` (plain `dvc repro` does not compose).",
            file=sys.stderr,
        )
        return 1
    print(f"{args.params} matches conf/")
    return 0


def _stage(args: argparse.Namespace) -> int:
    module = importlib.import_module(f"seda.stages.{args.name}")
    return int(module.main(args.args) or 0)


def _setup(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seda.envs import EnvError, create_spleeter_env

    try:
        python = create_spleeter_env(Path(args.env), args.python)
    except EnvError as err:
        print(f"seda: {err}", file=sys.stderr)
        return 2
    print(f"spleeter environment ready: {python}")
    return 0


def _cache_prune(args: argparse.Namespace) -> int:
    from pathlib import Path

    from seda.cache import prune

    if not Path(args.root).is_dir():
        print(f"no cache folder {args.root}: nothing to prune")
        return 0
    report = prune(args.root, dry_run=args.dry_run)
    verb = "would free" if args.dry_run else "freed"
    print(
        f"{verb} {report.bytes / 2**20:.1f} MiB in {report.entries} cache entries "
        f"no current output uses ({args.root})"
    )
    return 0


def _models_fetch(args: argparse.Namespace) -> int:
    from seda.checkpoints import fetch_configured

    fetched = fetch_configured(load_params(args.params), args.names, args.dest)
    for name, folder in fetched.items():
        print(f"{name}: {folder}")
    if fetched:
        print(f"use them with: -S backbones.<name>.local_dir={args.dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seda", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("compose", help="compose conf/ (with Hydra overrides) into params.yaml")
    p.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. dataset=turevdb")
    p.add_argument("--output", default="params.yaml")
    p.set_defaults(func=_compose)

    p = sub.add_parser("check", help="fail when params.yaml differs from the composition of conf/")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_check)

    p = sub.add_parser("stage", help="run one pipeline stage on params.yaml (as dvc repro does)")
    p.add_argument("name", choices=stage_names(), help="a stage module of seda.stages")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=_stage)

    p = sub.add_parser(
        "setup", help="create an isolated environment (spleeter: TensorFlow, numpy<2)"
    )
    p.add_argument("what", choices=["spleeter"])
    p.add_argument("--env", default=".venvs/spleeter", help="where to create the virtualenv")
    p.add_argument("--python", default=None, help="a Python 3.8-3.11 interpreter for it")
    p.set_defaults(func=_setup)

    p = sub.add_parser("cache", help="manage the per-file caches under data/cache")
    cache_sub = p.add_subparsers(dest="cache_command", required=True)
    p = cache_sub.add_parser("prune", help="remove cache entries no current output uses")
    p.add_argument("--root", default="data/cache")
    p.add_argument("--dry-run", action="store_true", help="only say what would be freed")
    p.set_defaults(func=_cache_prune)

    p = sub.add_parser("models", help="pinned backbone checkpoints for nodes without internet")
    models_sub = p.add_subparsers(dest="models_command", required=True)
    p = models_sub.add_parser(
        "fetch", help="download the configured checkpoints at their pinned revisions, once"
    )
    p.add_argument("names", nargs="*", help="backbones to fetch (default: all configured)")
    p.add_argument("--dest", default="models/hub", help="the folder local_dir then points at")
    p.add_argument("--params", default="params.yaml")
    p.set_defaults(func=_models_fetch)

    sub.add_parser(
        "predict", add_help=False, help="emotion of every speech segment of files, folders or URLs"
    )
    sub.add_parser("label", add_help=False, help="pseudo-label unlabelled clips; review queue")
    sub.add_parser("review", add_help=False, help="review pseudo-labels in the browser")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    setup_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return int(importlib.import_module(PASSTHROUGH[argv[0]]).main(argv[1:]) or 0)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"seda: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
