"""A time limit for one generated check: :func:`time_limit` raises
:class:`CheckTimeout` into the running check when its seconds are up, with an
interval timer (SIGALRM) where that signal is free, else a watchdog thread.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any


class CheckTimeout(BaseException):
    """Raised into a check that ran past its time limit (a BaseException, so that a
    forward's ``except Exception`` cannot swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CheckTimeout` in this thread after ``seconds``. With SIGALRM free (no
    pytest-timeout signal timer running) an interval timer, which also interrupts
    ``time.sleep``; otherwise a watchdog thread that raises asynchronously in this
    thread at its next Python instruction (it cannot interrupt one long C call)."""
    if not seconds or seconds <= 0:
        yield
        return
    free = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, signal.SIG_IGN, None)
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if free:

        def expire(signum: int, frame: Any) -> None:
            raise CheckTimeout

        previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        return
    import ctypes  # only here: plain runs do not pay for it

    target = ctypes.c_ulong(threading.get_ident())
    lock, done = threading.Lock(), threading.Event()
    state = {"active": True, "fired": False}

    def watch() -> None:
        if done.wait(seconds):
            return
        with lock:
            if state["active"]:
                state["fired"] = True
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, ctypes.py_object(CheckTimeout))

    watcher = threading.Thread(target=watch, name="convcheck-timeout", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with lock:
            state["active"] = False
            if state["fired"]:  # not yet delivered: withdraw it
                ctypes.pythonapi.PyThreadState_SetAsyncExc(target, None)
        done.set()
        watcher.join()
