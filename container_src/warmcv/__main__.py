"""`python -m warmcv` is the same as the `warmcv` command (useful where console scripts are not on PATH)."""

import sys

try:
    from warmcv.cli import main
except KeyboardInterrupt:  # a Ctrl-C this early is a stop like any other: one line, not an import traceback
    print("warmcv: stopped (interrupted)", file=sys.stderr)
    raise SystemExit(130) from None

raise SystemExit(main())
