"""The job's wall-clock budget: ``--budget`` parsed (``parse_budget``), shown (``format_seconds``) and counted across
invocations (``BudgetClock``).

Example::

    budget_s = parse_budget("20m")                      # 1200.0
    with BudgetClock(budget_s, spent_before=0.0, save=print) as clock:
        deadline = clock.deadline_after(60)             # a time.monotonic() value, never past the job's end
    format_seconds(clock.left)                          # "19 min 59 s"
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable

from phonetune.errors import ConfigError

STATE_SAVE_EVERY_S = 5.0
_BUDGET_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([smh]?)\s*$")
_UNIT_SECONDS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_budget(text: str) -> float:
    """``"90s"``, ``"20m"``, ``"1.5h"`` or a bare number of seconds, as seconds; ConfigError naming the value."""
    match = _BUDGET_PATTERN.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"--budget must be a positive duration such as 90s, 20m or 1.5h, but got {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_seconds(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


class BudgetClock:
    """Wall time spent on one job across invocations; a thread saves it into the state every few seconds."""

    def __init__(self, budget_s: float, spent_before: float, save: Callable[[float], None]) -> None:
        self.budget_s = budget_s
        self._started = time.monotonic() - spent_before
        self._save = save
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep_saving, name="budget-clock", daemon=True)

    @property
    def spent(self) -> float:
        return time.monotonic() - self._started

    @property
    def left(self) -> float:
        return self.budget_s - self.spent

    def deadline_after(self, seconds: float) -> float:
        """A ``time.monotonic()`` value ``seconds`` from now, never past the job's own end."""
        return min(time.monotonic() + seconds, self._started + self.budget_s)

    def _keep_saving(self) -> None:
        while not self._stop.wait(STATE_SAVE_EVERY_S):
            self._save(self.spent)

    def __enter__(self) -> "BudgetClock":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._save(self.spent)
