"""The job's wall-clock budget: ``--budget`` parsed (``parse_budget``), shown (``format_seconds``) and counted across
invocations (``BudgetClock``); a stage's share of it (``TimeLimit``, from ``planner.Plan.stage_end``).

Example::

    budget_s = parse_budget("20m")                      # 1200.0; "2m30s" is 150.0
    clock = BudgetClock(budget_s, spent_before=0.0)
    with clock.saving(print):                           # the time spent, every few seconds and at the end
        deadline = clock.deadline_after(60)             # a time.monotonic() value, never past the job's end
    format_seconds(clock.left)                          # "19 min 59 s"
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

from phonetune.errors import ConfigError

logger = logging.getLogger(__name__)

STATE_SAVE_EVERY_S = 5.0
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([hms]?)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}
# A budget past this is almost surely a typo (99999h); a real multi-week job can be run in parts.
MAX_BUDGET_S = 30 * 24 * 3600.0


def parse_budget(text: str) -> float:
    """``"90s"``, ``"20m"``, ``"1.5h"``, ``"2m30s"``, ``"1h 30m"`` or a bare number of seconds, as seconds.

    Units go from hours down to seconds, each at most once; ConfigError naming the value otherwise, or when the total
    is not positive or over 30 days."""
    compact = str(text).strip().lower()
    position, total, units = 0, 0.0, []
    while position < len(compact):
        match = _PART.match(compact, position)
        if match is None:
            break
        units.append(match.group(2))
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
        while position < len(compact) and compact[position] == " ":
            position += 1
    ordered = [unit or "s" for unit in units]
    well_formed = (units and position == len(compact) and len(set(ordered)) == len(ordered)
                   and ordered == sorted(ordered, key="hms".index) and ("" not in units or len(units) == 1))
    if not well_formed or total <= 0:
        raise ConfigError(
            f"--budget must be a positive duration such as 90s, 20m, 1.5h or 2m30s, but got {text!r}"
        )
    if total > MAX_BUDGET_S:
        raise ConfigError(f"--budget must be at most 30 days ({MAX_BUDGET_S:.0f} s), but got {text!r} "
                          f"({format_seconds(total)}); split a longer job into parts")
    return total


def format_seconds(seconds: float) -> str:
    """``45 s``, ``3 min 05 s``, ``2 h 07 min``; a negative duration (time overrun) as ``-3 min 05 s``."""
    if seconds < 0:
        return "-" + format_seconds(-seconds)
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class BudgetClock:
    """Wall time spent on one job across invocations (``spent_before`` by the earlier ones); inside ``saving`` a
    thread hands the time spent to a callback every few seconds, and once more at the end."""

    def __init__(self, budget_s: float, spent_before: float) -> None:
        self.budget_s = budget_s
        self._started = time.monotonic() - spent_before

    @property
    def spent(self) -> float:
        return time.monotonic() - self._started

    @property
    def left(self) -> float:
        return self.budget_s - self.spent

    def deadline_at(self, spent: float) -> float:
        """The ``time.monotonic()`` value at which the job's spent time reaches ``spent`` (never past its end)."""
        return self._started + min(spent, self.budget_s)

    def deadline_after(self, seconds: float) -> float:
        """A ``time.monotonic()`` value ``seconds`` from now, never past the job's own end."""
        return min(time.monotonic() + seconds, self._started + self.budget_s)

    @contextlib.contextmanager
    def saving(self, save: Callable[[float], None]) -> Iterator["BudgetClock"]:
        """Call ``save(spent)`` every ``STATE_SAVE_EVERY_S`` while the block runs, and once when it ends (a kill
        loses at most that much of the count)."""
        stop = threading.Event()

        def keep_saving() -> None:
            while not stop.wait(STATE_SAVE_EVERY_S):
                try:
                    save(self.spent)
                except OSError as exc:  # a full disk: the save at the end tries again, and says so if it fails
                    logger.debug("the time spent could not be saved: %s", exc)

        thread = threading.Thread(target=keep_saving, name="budget-clock", daemon=True)
        thread.start()
        try:
            yield self
        except BaseException:
            stop.set()
            thread.join()
            try:
                save(self.spent)
            except OSError as exc:
                # The error that stopped the job is the one to tell; this one must not take its place.
                logger.warning("the time this run spent (%s) could not be saved: %s", format_seconds(self.spent), exc)
            raise
        stop.set()
        thread.join()
        save(self.spent)


@dataclass(frozen=True)
class TimeLimit:
    """One stage's time: it must be done when the job's clock reaches ``end_s`` (``Plan.stage_end``). The job hands
    each stage its limit; a stage reads what is left of it and never computes another stage's share."""

    stage: str
    end_s: float
    clock: BudgetClock

    @property
    def left(self) -> float:
        """Seconds until the stage's end (negative once it is past)."""
        return self.end_s - self.clock.spent

    @property
    def deadline(self) -> float:
        """The stage's end as a ``time.monotonic()`` value, never past the job's own end."""
        return self.clock.deadline_at(self.end_s)

    def moved_to(self, end_s: float) -> "TimeLimit":
        """The same stage ending at ``end_s`` instead (a screen extended to complete its first trial)."""
        return TimeLimit(self.stage, end_s, self.clock)
