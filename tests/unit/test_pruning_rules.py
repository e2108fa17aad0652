"""The pruning rules' decisions on hand-made fold scores, and the Wilcoxon rule against Optuna's own pruner."""

from __future__ import annotations

import math
import random
import warnings

import optuna
import pytest

from warmcv.cv.pruning import (
    FoldPruner,
    PairedBoundRule,
    StagedFolds,
    WilcoxonRule,
    make_rule,
    rotated_order,
)

K = 5
# Five completed trials: #0 is the best (mean 0.90); the others' paired differences against it have
# standard deviations 0.0028, 0.0071, 0.0071 and 0.0173 (median 0.0071).
BEST = {0: 0.91, 1: 0.89, 2: 0.90, 3: 0.92, 4: 0.88}
OTHERS = {
    1: [-0.010, -0.006, -0.014, -0.010, -0.010],
    2: [-0.020, -0.010, -0.030, -0.020, -0.020],
    3: [-0.030, -0.020, -0.040, -0.030, -0.030],
    4: [0.010, -0.020, -0.030, -0.030, -0.030],
}


def _scores(differences: list[float]) -> dict[int, float]:
    return {fold: BEST[fold] + d for fold, d in enumerate(differences)}


def _pruner(rule=None, direction: str = "Maximize", min_trials: int = 5) -> FoldPruner:
    pruner = FoldPruner(rule or PairedBoundRule(0.1), direction, K, min_trials=min_trials)
    pruner.add_complete(0, BEST)
    for number, differences in OTHERS.items():
        pruner.add_complete(number, _scores(differences))
    return pruner


def test_the_reference_is_the_best_trial_and_the_median_spread_of_the_others() -> None:
    reference = _pruner().reference
    assert reference is not None
    assert reference.trial == 0 and reference.mean == pytest.approx(0.90)
    import statistics

    spreads = sorted(statistics.stdev(d) for d in OTHERS.values())
    assert reference.spread == pytest.approx((spreads[1] + spreads[2]) / 2)
    assert reference.spread_trials == 4


def test_nothing_is_pruned_before_enough_trials_completed() -> None:
    pruner = FoldPruner(PairedBoundRule(0.1), "Maximize", K, min_trials=5)
    pruner.add_complete(0, BEST)
    pruner.add_complete(1, _scores(OTHERS[1]))
    decision = pruner.check({0: 0.10})  # hopeless, but there is nothing to measure the spread with yet
    assert not decision.prune and "fewer than 5 completed trials" in decision.reason


def test_a_copy_of_the_best_shows_no_spread_and_does_not_count() -> None:
    pruner = FoldPruner(PairedBoundRule(0.1), "Maximize", K, min_trials=3)
    for number in range(4):
        pruner.add_complete(number, BEST)  # the same scores again and again (say, a parameter that does nothing)
    reference = pruner.reference
    assert reference is not None and reference.spread is None
    assert not pruner.check({0: 0.10}).prune


def test_the_chance_to_beat_the_best_is_the_normal_bound_on_the_final_mean() -> None:
    rule = PairedBoundRule(0.1)
    # One fold 0.01 below the best, per-fold spread 0.005: the final mean difference ~ N(-0.01, 0.005^2 (1 - 1/5)).
    expected = 0.5 * math.erfc(0.01 / (0.005 * math.sqrt(0.8)) / math.sqrt(2))
    assert rule.chance_to_beat([-0.01], 0.005, 5) == pytest.approx(expected)
    assert rule.chance_to_beat([-0.01], 0.005, 5) == pytest.approx(0.01267, abs=1e-5)
    # More folds seen at the same mean difference: less room for the rest to make up for it.
    assert rule.chance_to_beat([-0.01] * 4, 0.005, 5) < rule.chance_to_beat([-0.01] * 2, 0.005, 5)
    assert rule.chance_to_beat([0.001], 0.005, 5) > 0.5


def test_paired_bound_prunes_a_clearly_worse_trial_after_its_first_fold() -> None:
    decision = _pruner().check({3: BEST[3] - 0.05})
    assert decision.prune and decision.folds_seen == 1 and decision.best_trial == 0
    assert decision.statistic is not None and decision.statistic < 1e-6
    assert decision.trial_mean == pytest.approx(0.87) and decision.best_mean_same_folds == pytest.approx(0.92)
    assert "chance to beat trial #0" in decision.reason


def test_paired_bound_lets_a_slightly_worse_first_fold_go_on_and_stops_it_when_the_evidence_adds_up() -> None:
    pruner = _pruner()
    first = pruner.check({2: BEST[2] - 0.004})  # within the spread: could still come out ahead
    assert not first.prune and first.statistic is not None and 0.1 < first.statistic < 0.5
    later = pruner.check({2: BEST[2] - 0.004, 3: BEST[3] - 0.008, 4: BEST[4] - 0.006, 0: BEST[0] - 0.007})
    assert later.prune and later.folds_seen == 4


def test_a_trial_ahead_of_the_best_on_its_folds_is_never_pruned() -> None:
    pruner = _pruner(PairedBoundRule(0.49))
    assert not pruner.check({1: BEST[1] + 0.001}).prune
    assert not pruner.check({1: BEST[1] + 0.02, 2: BEST[2] - 0.01}).prune  # mean difference +0.005


def test_a_trials_own_spread_is_used_when_it_is_larger() -> None:
    pruner = _pruner()
    steady = {0: BEST[0] - 0.012, 1: BEST[1] - 0.012}
    wild = {0: BEST[0] + 0.040, 1: BEST[1] - 0.064}  # the same mean difference, swinging widely
    assert pruner.check(steady).prune
    assert not pruner.check(wild).prune


def test_minimize_flips_the_direction() -> None:
    pruner = _pruner(direction="Minimize")
    # For Minimize the best is the lowest mean: trial #3 (mean 0.87); higher scores are worse.
    reference = pruner.reference
    assert reference is not None and reference.trial == 3
    worse = {f: reference.fold_scores[f] + 0.05 for f in (0,)}
    better = {f: reference.fold_scores[f] - 0.05 for f in (0,)}
    assert pruner.check(worse).prune and not pruner.check(better).prune


def test_no_pruning_on_non_finite_scores_or_once_every_fold_has_run() -> None:
    pruner = _pruner()
    assert not pruner.check({0: math.nan}).prune
    assert not pruner.check({f: 0.1 for f in range(K)}).prune
    pruner.add_complete(99, {0: math.nan, 1: 0.9, 2: 0.9, 3: 0.9, 4: 0.9})  # ignored: not a completed CV
    assert pruner.reference is not None and 99 not in (pruner.reference.trial,)


def test_wilcoxon_cannot_prune_before_the_fourth_of_five_folds_at_its_default_threshold() -> None:
    """Its smallest one-sided p-value with k differences is 2^-k: 0.125 after 3 folds, 0.0625 after 4."""
    pruner = _pruner(WilcoxonRule(0.1), min_trials=1)
    hopeless = {f: 0.5 for f in range(K)}
    for k in range(1, 4):
        assert not pruner.check({f: hopeless[f] for f in range(k)}).prune
    decision = pruner.check({f: hopeless[f] for f in range(4)})
    assert decision.prune and decision.statistic == pytest.approx(0.0625)


def _optuna_decides(best: dict[int, float], others: list[dict[int, float]], running: dict[int, float],
                    direction: str, threshold: float) -> bool:
    """Optuna's WilcoxonPruner on a real (in-memory) study holding the same trials."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction=direction.lower(),
                                    pruner=optuna.pruners.WilcoxonPruner(p_threshold=threshold))
        for scores in [best, *others]:
            trial = study.ask()
            for fold, score in scores.items():
                trial.report(score, fold)
            study.tell(trial, sum(scores.values()) / len(scores))
        trial = study.ask()
        for fold, score in running.items():
            trial.report(score, fold)
        return trial.should_prune()


@pytest.mark.parametrize("direction", ["Maximize", "Minimize"])
def test_wilcoxon_rule_decides_as_optunas_wilcoxon_pruner(direction: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rng = random.Random(7)
    sign = 1.0 if direction == "Maximize" else -1.0  # the way to better scores
    disagreements, prunes = [], 0
    for case in range(120):
        best = {f: 0.8 + rng.uniform(-0.05, 0.05) for f in range(K)}
        others = [{f: best[f] - sign * rng.uniform(0.0, 0.02) for f in range(K)} for _ in range(2)]
        shift = rng.uniform(-0.03, 0.01)  # mostly worse than the best, sometimes better
        folds = rng.sample(range(K), rng.randint(1, K - 1))
        running = {f: best[f] + sign * shift + rng.gauss(0, 0.005) for f in folds}
        if case % 3 == 0:
            running[folds[0]] = best[folds[0]]  # a tie: how the test splits zero differences matters
        threshold = rng.choice([0.05, 0.1, 0.2, 0.3])
        pruner = FoldPruner(WilcoxonRule(threshold), direction, K, min_trials=1)
        for number, scores in enumerate([best, *others]):
            pruner.add_complete(number, scores)
        ours = pruner.check(running).prune
        prunes += ours
        if ours != _optuna_decides(best, others, running, direction, threshold):
            disagreements.append(case)
    assert disagreements == []
    assert 10 < prunes < 110  # the cases exercise both answers


def test_rules_refuse_thresholds_outside_zero_one() -> None:
    for bad in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            make_rule("paired-bound", bad)
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            make_rule("wilcoxon", bad)
    with pytest.raises(ValueError, match="unknown pruning rule 'median'; one of paired-bound, wilcoxon"):
        make_rule("median", 0.1)


def test_stages_hand_out_one_fold_then_step_folds_in_the_trials_order() -> None:
    def never(_: object) -> object:
        raise AssertionError("not called")

    assert rotated_order(5, 7) == [2, 3, 4, 0, 1]
    assert StagedFolds(rotated_order(5, 2), never).stages() == [[2], [3], [4], [0], [1]]
    assert StagedFolds(range(5), never, first=2, step=3).stages() == [[0, 1], [2, 3, 4]]
    assert StagedFolds(range(3), never, first=5).stages() == [[0, 1, 2]]
    with pytest.raises(ValueError, match="first >= 1 and step >= 1"):
        StagedFolds(range(3), never, first=0)

