"""How a search shows its progress: a tqdm bar with the best score so far, or one line per trial.

Shared by `warmcv run` and `warmcv.tune` (where `tqdm.auto` draws a notebook widget in Jupyter).
"""

from __future__ import annotations

import sys
from typing import Any


class TrialProgress:
    """A tqdm bar with the best score so far, or one line per trial when the output is not a terminal."""

    def __init__(self, bar: bool):
        self.use_bar = bar
        self.bar: Any = None
        self.metric = "score"

    def start(self, metric: str, budget: int, done: int) -> None:
        self.metric = metric
        if self.use_bar:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=budget, initial=min(done, budget), unit="trial", dynamic_ncols=True,
                            file=sys.stderr, desc="search")

    def say(self, message: str) -> None:
        """A stage message. Stages after the search has started come once it is over: the bar is done."""
        self.close()
        print(message, flush=True)

    def __call__(self, report: Any) -> None:
        best = (f"best {self.metric} {report.best_value:.6f} (#{report.best_number})"
                if report.best_value is not None else "no completed trial yet")
        first_line = report.error.splitlines()[0] if report.error else ""
        pruned = report.pruned_so_far
        if self.bar is not None:
            if report.state != "interrupted":
                self.bar.update(1)
            self.bar.set_postfix_str(best + (f", {pruned} pruned" if pruned else ""))
            if report.state == "failed":
                self.bar.write(f"trial #{report.number} failed: {first_line}")
            if report.note:
                self.bar.write(f"trial #{report.number}: {report.note}")
            return
        if report.state == "complete":
            what = f"{self.metric} {report.value:.6f} +/- {report.std:.6f}"
        elif report.state == "pruned" and report.pruned is not None:
            what = pruned_line(report.pruned, self.metric)
        else:
            what = report.state + (f": {first_line}" if first_line else "")
        note = f" ({report.note})" if report.note else ""
        print(f"trial #{report.number} ({report.counted}/{report.budget}, {report.seconds:.1f} s): {what}{note}; "
              f"{best}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def pruned_line(decision: Any, metric: str) -> str:
    """A pruned trial in one line: why it stopped, in the numbers the pruner compared."""
    text = f"pruned after {decision.folds_seen} of {decision.n_folds} folds"
    if decision.trial_mean is not None and decision.best_mean_same_folds is not None:
        text += (f": {metric} {decision.trial_mean:.6f} against {decision.best_mean_same_folds:.6f} for "
                 f"#{decision.best_trial} on the same fold{'s' if decision.folds_seen > 1 else ''}")
    return text
