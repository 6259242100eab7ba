"""Ctrl-C (and SIGTERM) that cannot be lost: the handler records the request before it raises ``KeyboardInterrupt``.

Python runs a signal handler at the next bytecode of the main thread, which may be inside a garbage-collection
callback (SQLAlchemy registers weakref callbacks); an exception raised there is printed as "Exception ignored" and
dropped, and a worker told to stop would train its trial to the end. So the handler also sets a flag, and the
training loop (``model.trainer``), a safe point reached every step, raises ``KeyboardInterrupt`` again while the flag
is set: an interrupt that was swallowed is raised where it cannot be.

Example::

    install()                      # in a command's main thread
    ...
    if requested(): raise KeyboardInterrupt
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def _handler(signum: int, _frame: object) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install(*signals: int) -> None:
    """Handle ``signals`` (default SIGINT) as a recorded Ctrl-C; from the main thread only, as Python requires."""
    if threading.current_thread() is threading.main_thread():
        for number in signals or (signal.SIGINT,):
            signal.signal(number, _handler)


def requested() -> bool:
    """Whether this process was asked to stop (and so must, even if the first KeyboardInterrupt was swallowed)."""
    return _requested.is_set()


def clear() -> None:
    """Forget a request once it has been acted on (a process that goes on, such as a test or a notebook)."""
    _requested.clear()


class InterruptedBeforeState(KeyboardInterrupt):
    """A Ctrl-C that came before the command wrote anything to continue from: its message must not promise that
    state was kept."""
