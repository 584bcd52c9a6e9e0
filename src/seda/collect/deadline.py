"""A wall-clock deadline that stops yt-dlp wherever it is, and the server's ``Retry-After``.

``socket_timeout`` bounds each network read, but a server that trickles one byte a second keeps
every read under it, and one block of yt-dlp's (1 KiB and up) then takes many minutes, so a
progress hook, called between blocks, comes too late. :meth:`Deadline.enforced` therefore arms
SIGALRM (main thread only; the stages run there) for the deadline: its handler raises
:class:`DeadlineExceeded` inside whatever read or ffmpeg wait yt-dlp is in, and repeats every
half second until the fetch has stopped. :meth:`Deadline.check` does the same from progress hooks
and before each request, in any thread. An outer timer (pytest-timeout's) is put back afterwards.
"""

from __future__ import annotations

import email.utils
import math
import signal
import threading
import time
from typing import Any

# After its deadline the alarm repeats at this interval until the fetch has stopped.
ALARM_REPEAT_SECONDS = 0.5


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds to wait from an HTTP ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


class DeadlineExceeded(BaseException):
    """Raised into yt-dlp when a url's time is up. A BaseException, like KeyboardInterrupt, so
    that no ``except Exception`` inside yt-dlp swallows it and carries on."""


class Deadline:
    """The deadline of the url (or playlist entry) being fetched.

    :meth:`check` (yt-dlp's progress hook, each request) stops a fetch in any thread between two
    blocks; :meth:`enforced` also arms SIGALRM (main thread only), which interrupts a read that
    never returns: a server trickling one byte a second keeps every read under socket_timeout
    and one block of yt-dlp's takes many minutes. An alarm of an outer timer (pytest-timeout) is
    put back afterwards.
    """

    def __init__(self) -> None:
        self.at = math.inf
        self.window = 0.0
        self.label = ""
        self.hit = False
        self._armed = False

    def set(self, at: float, window: float, label: str = "") -> None:
        self.at, self.window, self.label = at, window, label
        if self._armed:
            self._arm()

    def clear(self) -> None:
        self.set(math.inf, 0.0)

    def left(self) -> float:
        return self.at - time.monotonic()

    def message(self) -> str:
        where = f"{self.label}: " if self.label else ""
        return (
            f"{where}no result within the {self.window:g} s deadline "
            "(dataset.ytdlp.timeout_seconds)"
        )

    def check(self) -> None:
        if time.monotonic() >= self.at:
            self.hit = True
            raise DeadlineExceeded(self.message())

    def _arm(self) -> None:
        if math.isinf(self.at):
            signal.setitimer(signal.ITIMER_REAL, 0)
        else:
            delay = max(self.left(), 0.001)
            signal.setitimer(signal.ITIMER_REAL, delay, ALARM_REPEAT_SECONDS)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if self._armed:
            self.check()

    def _disarm(self) -> None:
        # A last alarm may land on any line here: repeat until the flag is down.
        while True:
            try:
                self._armed = False
                signal.setitimer(signal.ITIMER_REAL, 0)
                return
            except DeadlineExceeded:
                continue

    def enforced(self) -> _Alarm:
        return _Alarm(self)


class _Alarm:
    """Context manager: SIGALRM at the deadline while yt-dlp runs (no-op off the main thread)."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.active = (
            hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
        )
        self._handler: Any = None
        self._outer = (0.0, 0.0)
        self._started = 0.0

    def __enter__(self) -> _Alarm:
        if self.active:
            self._started = time.monotonic()
            self._handler = signal.signal(signal.SIGALRM, self.deadline._on_alarm)
            self._outer = signal.setitimer(signal.ITIMER_REAL, 0)
            self.deadline._armed = True
            self.deadline._arm()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.active:
            return
        self.deadline._disarm()
        handler = self._handler if self._handler is not None else signal.SIG_DFL
        signal.signal(signal.SIGALRM, handler)
        delay, interval = self._outer
        if delay > 0:
            left = max(delay - (time.monotonic() - self._started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, left, interval)
