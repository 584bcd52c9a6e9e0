"""The one way a stage's entry point reports a user error: one line on stderr, exit status 2.

Bad configuration, bad audio or a missing input is the user's to fix, so it gets a sentence, not a
traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from seda.audio import AudioError, FfmpegMissingError
from seda.config import ConfigError
from seda.logs import setup_logging

USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, AudioError, FfmpegMissingError)


def stage_main(
    name: str, work: Callable[[], Any], user_errors: tuple[type[BaseException], ...] = ()
) -> int:
    """Run ``work`` with logging set up; a user error becomes ``seda <name>: error: ...``."""
    setup_logging()
    try:
        work()
    except (*USER_ERRORS, *user_errors) as err:
        print(f"seda {name}: error: {err}", file=sys.stderr)
        return 2
    return 0
