"""The image's modes, each thin: parse the inputs, call the core, report. Dispatch lives in `entry`."""
