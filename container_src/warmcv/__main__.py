"""`python -m warmcv` is the same as the `warmcv` command (useful where console scripts are not on PATH)."""

from warmcv.cli import main

raise SystemExit(main())
