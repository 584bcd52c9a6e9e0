"""Errors a user fixes (bad settings, missing inputs); everything else is a bug with a traceback.

A stage's entry point (:func:`seda.entry.stage_main`) prints a :class:`UserError` as one line,
``seda <stage>: error: ...``, and exits with status 2.
"""

from __future__ import annotations


class UserError(Exception):
    """Something the person running seda can fix; the message says what and how."""


class ConfigError(UserError, ValueError):
    """A setting that cannot work; the message names the key, the value and what is allowed."""


class InputMissingError(UserError, FileNotFoundError):
    """A file or folder a stage reads is not there (run the stage that makes it first)."""
