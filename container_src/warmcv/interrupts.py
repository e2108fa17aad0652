"""A Ctrl-C that warmcv handled ends the process with status 130, every time.

CPython remembers, in a process-wide flag, that a KeyboardInterrupt left some evaluation it ran on
the way (numpy's and pandas' imports run code that way), and at exit it then kills itself with
SIGINT, whatever status the program chose. So a run stopped during start-up printed its one line
and then ended by a signal (-2 to a parent process) or with 130, depending on the millisecond the
Ctrl-C came. A shell shows 130 either way; a parent process, a CI job or a notebook's subprocess
call does not, and docs/run.md promises 130. Once warmcv has handled the interrupt and chosen its
status, the flag is stale, so it is cleared.
"""

from __future__ import annotations

import ctypes


def forget_handled_interrupt() -> None:
    """Clear CPython's "a KeyboardInterrupt went unhandled" flag (nothing to do on other interpreters)."""
    try:
        flag = ctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt")
    except (AttributeError, ValueError):  # not CPython, or a build that does not export it
        return
    flag.value = 0
