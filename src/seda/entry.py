"""The one way a stage's entry point reports an error a person can act on: one line on stderr.

Bad configuration, bad audio or a missing input is the user's to fix (exit status 2); a machine
failure such as a full disk or a denied write stops the stage (exit status 1) so that DVC records
nothing. Each gets a sentence, not a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from seda.errors import UserError
from seda.logs import setup_logging
from seda.parallel import EnvironmentFailure, is_environment_error


def stage_main(
    name: str, work: Callable[[], Any], user_errors: tuple[type[BaseException], ...] = ()
) -> int:
    """Run ``work`` with logging set up; a user error becomes ``seda <name>: error: ...``."""
    setup_logging()
    try:
        work()
    except (UserError, *user_errors) as err:
        print(f"seda {name}: error: {err}", file=sys.stderr)
        return 2
    except EnvironmentFailure as err:
        print(f"seda {name}: error: stopped, nothing recorded: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if not is_environment_error(err):
            raise
        where = f": {err.filename}" if err.filename else ""
        print(
            f"seda {name}: error: stopped, nothing recorded: {err.strerror or err}{where}",
            file=sys.stderr,
        )
        return 1
    return 0
