"""Fold-level pruning: stop a trial's cross-validation once its first folds show it cannot beat the best.

A trial's score is the mean of K fold scores. After k of its folds, the paired differences
d_j = s_j - b_j against the best trial's scores b_j on the same folds say how the trial compares where
both were measured ("paired": a hard fold is hard for every trial, so comparing fold by fold removes
most of the noise that comparing means would carry). The trial beats the best only if its mean
difference over all K folds ends above zero.

Two rules decide from the same paired differences:

- `PairedBoundRule` (the default): the chance that the trial still beats the best. With the trial's
  true mean difference unknown (a flat prior) and the unseen folds' differences spread like the
  seen ones (standard deviation sigma), the final mean difference is normal with mean d̄ (the mean of
  the k seen differences) and variance sigma^2 (1/k - 1/K); the trial is pruned when
  Phi(d̄ / (sigma sqrt(1/k - 1/K))) < threshold. One number, sigma, is not known after one fold; it
  is pooled from the completed trials (the median over them of the standard deviation of their
  paired differences against the best), and a trial's own spread replaces it when larger. So a
  trial can be pruned after its first fold, and the evidence a later fold adds is weighed exactly.
- `WilcoxonRule`: the test of Optuna's `WilcoxonPruner` (a one-sided Wilcoxon signed-rank test of the
  paired differences, zsplit for ties, and its "a trial whose average beats the best's is never
  pruned" safety), the same decisions as `optuna.pruners.WilcoxonPruner` on the same scores (a test
  checks it against Optuna's own). Being rank-based it needs no sigma, but with K folds its smallest
  p-value is 2^-k: at the default threshold 0.1 nothing is pruned before the 4th fold of 5.

Nothing here knows where folds run: the local search and a SageMaker driver hand a trial's folds out
in stages (`StagedFolds`, read by `cross_validate`), and ask one shared `FoldPruner` between stages.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from warmcv.cv.folds import FoldResult
from warmcv.cv.summary import CrossValidationSummary
from warmcv.settings.choices import PRUNE_RULES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reference:
    """What a running trial is compared with: the best completed trial, and the spread of paired differences."""

    trial: int
    fold_scores: Mapping[int, float]  # the best trial's validation score per fold (all K)
    mean: float
    # Median over the other completed trials of the standard deviation of their paired differences
    # against the best (None when too few trials show any spread).
    spread: float | None
    spread_trials: int  # how many completed trials the spread rests on


@dataclass(frozen=True)
class PruningDecision:
    """One check of a trial between two stages; `to_dict` is what a pruned trial keeps in the study."""

    prune: bool
    rule: str
    folds_seen: int
    n_folds: int
    threshold: float
    statistic: float | None = None  # chance to beat the best (paired-bound) or p-value (wilcoxon)
    best_trial: int | None = None
    trial_mean: float | None = None  # the trial's mean over the folds seen
    best_mean_same_folds: float | None = None  # the best trial's mean over the same folds
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PruningDecision:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class PruningRule(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def threshold(self) -> float: ...

    def decide(self, scores: Mapping[int, float], reference: Reference, n_folds: int,
               maximize: bool) -> PruningDecision:
        """Prune or not, from the trial's scores so far (fold -> score) and the reference."""
        ...


def _paired(scores: Mapping[int, float], reference: Reference) -> tuple[list[int], list[float]]:
    folds = sorted(f for f in scores if f in reference.fold_scores)
    return folds, [scores[f] - reference.fold_scores[f] for f in folds]


def _decision(rule: PruningRule, prune: bool, scores: Mapping[int, float], reference: Reference, n_folds: int,
              statistic: float | None, why: str) -> PruningDecision:
    folds = [f for f in scores if f in reference.fold_scores]
    trial_mean = statistics.fmean(scores[f] for f in folds) if folds else None
    best_mean = statistics.fmean(reference.fold_scores[f] for f in folds) if folds else None
    return PruningDecision(prune, rule.name, len(scores), n_folds, rule.threshold, statistic, reference.trial,
                           trial_mean, best_mean, why)


@dataclass(frozen=True)
class PairedBoundRule:
    """Prune when the chance that the trial's K-fold mean ends above the best's is below `threshold`."""

    threshold: float = 0.1
    name: str = field(default="paired-bound", init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"the paired-bound threshold is a probability in (0, 1), got {self.threshold}")

    def chance_to_beat(self, differences: Sequence[float], sigma: float, n_folds: int) -> float:
        """P(final mean difference > 0) for k seen differences, `sigma` the per-fold spread (higher is better)."""
        k = len(differences)
        mean = statistics.fmean(differences)
        scale = sigma * math.sqrt(max(0.0, 1.0 / k - 1.0 / n_folds))
        if scale == 0.0:
            return 1.0 if mean > 0 else 0.5 if mean == 0 else 0.0
        return statistics.NormalDist().cdf(mean / scale)

    def decide(self, scores: Mapping[int, float], reference: Reference, n_folds: int,
               maximize: bool) -> PruningDecision:
        folds, raw = _paired(scores, reference)
        if not folds or reference.spread is None:
            return _decision(self, False, scores, reference, n_folds, None, "no spread of paired differences yet")
        sign = 1.0 if maximize else -1.0
        differences = [sign * d for d in raw]
        sigma = reference.spread
        if len(differences) >= 2:
            sigma = max(sigma, statistics.stdev(differences))
        chance = self.chance_to_beat(differences, sigma, n_folds)
        prune = chance < self.threshold
        why = (f"after {len(folds)} of {n_folds} folds the chance to beat trial #{reference.trial} is {chance:.3g}"
               f" ({'<' if prune else '>='} {self.threshold:g})")
        return _decision(self, prune, scores, reference, n_folds, chance, why)


@dataclass(frozen=True)
class WilcoxonRule:
    """Optuna's WilcoxonPruner test (as of Optuna 5.0) on the trial's and the best trial's fold scores."""

    threshold: float = 0.1
    n_startup_steps: int = 2
    name: str = field(default="wilcoxon", init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"the Wilcoxon p-value threshold is in (0, 1), got {self.threshold}")

    def decide(self, scores: Mapping[int, float], reference: Reference, n_folds: int,
               maximize: bool) -> PruningDecision:
        import scipy.stats

        folds, differences = _paired(scores, reference)
        if len(differences) < max(2, self.n_startup_steps):
            return _decision(self, False, scores, reference, n_folds, None,
                             f"{len(differences)} paired fold(s); the signed-rank test needs "
                             f"{max(2, self.n_startup_steps)}")
        # Optuna compares the trial's average over what it reported with the best's over all its folds.
        trial_average = statistics.fmean(scores.values())
        average_is_best = reference.mean <= trial_average if maximize else reference.mean >= trial_average
        p = float(scipy.stats.wilcoxon(differences, alternative="less" if maximize else "greater",
                                       zero_method="zsplit").pvalue)
        prune = p < self.threshold and not average_is_best
        why = (f"after {len(folds)} of {n_folds} folds the signed-rank p-value against trial #{reference.trial} is "
               f"{p:.3g} ({'<' if p < self.threshold else '>='} {self.threshold:g})"
               + ("; its average beats the best's, so it goes on" if p < self.threshold and average_is_best else ""))
        return _decision(self, prune, scores, reference, n_folds, p, why)


def make_rule(name: str, threshold: float) -> PruningRule:
    if name == "paired-bound":
        return PairedBoundRule(threshold)
    if name == "wilcoxon":
        return WilcoxonRule(threshold)
    raise ValueError(f"unknown pruning rule {name!r}; one of {', '.join(PRUNE_RULES)}")


class FoldPruner:
    """The best trial so far and the spread of paired differences: what every check needs, in one place.

    Whoever tells the study about a completed trial feeds it here (`add_complete`, also for the trials
    a resumed study already holds); trials ask `check` between stages from any thread. No study, no
    storage and no runner: the local search and a SageMaker driver share it as it is.
    """

    def __init__(self, rule: PruningRule, direction: str, n_folds: int, min_trials: int = 5):
        if direction not in ("Maximize", "Minimize"):
            raise ValueError(f"direction is Maximize or Minimize, got {direction!r}")
        self.rule = rule
        self.maximize = direction == "Maximize"
        self.n_folds = n_folds
        self.min_trials = max(1, min_trials)
        self._lock = threading.Lock()
        self._complete: dict[int, dict[int, float]] = {}
        self._reference: Reference | None = None

    def add_complete(self, number: int, fold_scores: Mapping[int, float]) -> None:
        """A trial that ran all its folds (only finite scores count: a NaN mean is not a completed trial)."""
        scores = {int(f): float(s) for f, s in fold_scores.items()}
        if len(scores) != self.n_folds or not all(math.isfinite(s) for s in scores.values()):
            return
        with self._lock:
            self._complete[number] = scores
            self._reference = self._build_reference()

    @property
    def reference(self) -> Reference | None:
        with self._lock:
            return self._reference

    def _build_reference(self) -> Reference | None:
        if len(self._complete) < self.min_trials:
            return None
        sign = 1.0 if self.maximize else -1.0
        # The best: the highest mean (lowest for Minimize); on a tie the earlier trial, as Optuna picks.
        best = max(sorted(self._complete), key=lambda n: sign * statistics.fmean(self._complete[n].values()))
        best_scores = self._complete[best]
        spreads = []
        for number, scores in self._complete.items():
            differences = [scores[f] - best_scores[f] for f in best_scores]
            if number != best and any(d != 0.0 for d in differences):  # a copy of the best shows no spread
                spreads.append(statistics.stdev(differences))
        spread = statistics.median(spreads) if len(spreads) >= self.min_trials - 1 and spreads else None
        return Reference(best, dict(best_scores), statistics.fmean(best_scores.values()), spread, len(spreads))

    def check(self, fold_scores: Mapping[int, float]) -> PruningDecision:
        """Should a trial with these fold scores stop here? Never before `min_trials` trials completed."""
        reference = self.reference
        if reference is None:
            return PruningDecision(False, self.rule.name, len(fold_scores), self.n_folds, self.rule.threshold,
                                   reason=f"fewer than {self.min_trials} completed trials to compare with")
        if not all(math.isfinite(s) for s in fold_scores.values()):
            return PruningDecision(False, self.rule.name, len(fold_scores), self.n_folds, self.rule.threshold,
                                   best_trial=reference.trial, reason="a fold score is not finite")
        if len(fold_scores) >= self.n_folds:
            return PruningDecision(False, self.rule.name, len(fold_scores), self.n_folds, self.rule.threshold,
                                   best_trial=reference.trial, reason="every fold has run")
        return self.rule.decide(fold_scores, reference, self.n_folds, self.maximize)


class TrialPruned(Exception):  # noqa: N818 - named as Optuna names its own
    """A cross-validation stopped by its pruning check: the folds it ran and the decision."""

    def __init__(self, summary: CrossValidationSummary, decision: PruningDecision):
        super().__init__(decision.reason)
        self.summary = summary
        self.decision = decision


@dataclass(frozen=True)
class StagedFolds:
    """How `cross_validate` hands out a trial's folds: `first` of them, then `step` at a time, in `order`,
    asking `check` after each stage whether to go on.

    Folds of one stage run together; a pruned trial's later stages are never handed to a runner, so
    nothing trains them. The order should differ between trials (`rotated_order`), so that the first
    fold, the one most decisions rest on, is not always the same one.
    """

    order: Sequence[int]
    check: Callable[[Mapping[int, float]], PruningDecision]
    first: int = 1
    step: int = 1

    def __post_init__(self) -> None:
        if self.first < 1 or self.step < 1:
            raise ValueError(f"stages need first >= 1 and step >= 1, got first={self.first}, step={self.step}")

    def stages(self) -> list[list[int]]:
        order = list(self.order)
        stages = [order[:self.first]]
        stages += [order[i:i + self.step] for i in range(self.first, len(order), self.step)]
        return [s for s in stages if s]

    def scores(self, results: Sequence[FoldResult]) -> dict[int, float]:
        return {r.fold: r.validation_score for r in results}


def rotated_order(n_folds: int, start: int) -> list[int]:
    """Folds 0..K-1 starting at `start` mod K: trial n begins with fold n mod K."""
    return [(start + i) % n_folds for i in range(n_folds)]
