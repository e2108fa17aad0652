"""A Ctrl-C that warmcv handled ends the process with 130, not by SIGINT (warmcv.interrupts).

CPython checks its flag only when the program ran as `python -m` (a script or `-c` exits through
SystemExit before the check), which is how `python -m warmcv` and these programs run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

# A KeyboardInterrupt leaving evaluation that CPython ran on the program's behalf sets the flag; the
# program then handles the interrupt and chooses 130. Setting the flag directly is that moment made
# deterministic (in the wild it depends on the millisecond of the Ctrl-C).
SET_FLAG = 'import ctypes\nctypes.c_int.in_dll(ctypes.pythonapi, "_Py_UnhandledKeyboardInterrupt").value = 1\n'


def _run_module(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "interrupted_program.py").write_text(source)
    return subprocess.run([sys.executable, "-m", "interrupted_program"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)


def test_without_forgetting_cpython_ends_a_handled_interrupt_by_sigint(tmp_path: Path) -> None:
    assert _run_module(tmp_path, SET_FLAG + "raise SystemExit(130)\n").returncode == -signal.SIGINT


def test_a_handled_interrupt_ends_with_130(tmp_path: Path) -> None:
    source = SET_FLAG + "from warmcv.interrupts import forget_handled_interrupt\nforget_handled_interrupt()\n"
    assert _run_module(tmp_path, source + "raise SystemExit(130)\n").returncode == 130


def test_the_command_line_forgets_the_interrupt_it_handled(tmp_path: Path) -> None:
    """`warmcv` answers a KeyboardInterrupt raised inside a command with 130 even with the flag set."""
    source = SET_FLAG.replace("\nctypes", "\ndef interrupted(args):\n    ctypes") + """
    raise KeyboardInterrupt

import argparse
from warmcv import cli

class Parser:
    def parse_args(self, argv):
        return argparse.Namespace(handler=interrupted, log_level=None, failure_file=None)

cli.build_parser = Parser
raise SystemExit(cli.main([]))
"""
    result = _run_module(tmp_path, source)
    assert result.returncode == 130, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "warmcv: stopped (interrupted)"
