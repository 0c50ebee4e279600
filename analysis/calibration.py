"""Calibration units in a study (issue 17 item 3): does a score order the calibration model's
units as their construction says, and at which mixing does an explanation stop describing a
polysemantic unit (a psychometric function of proportion correct against the mixing knob)."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from analysis.bootstrap import percentile_interval
from experiments.study.calibration_units import calibration_units

CHANCE = 0.5


def construction() -> pd.DataFrame:
    """Each calibration unit's function, kind, mixing knob and known order, by unit_id."""
    return pd.DataFrame([{"unit_id": u.unit_id, "function": u.function, "kind": u.kind,
                          "mixing": u.mixing, "known_order": u.known_order}
                         for u in calibration_units()])


def calibration_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` about calibration units, with their construction columns."""
    known = construction()
    return frame.merge(known, on="unit_id", how="inner") if "unit_id" in frame else known.iloc[:0]


def order_agreement(scores: pd.DataFrame, n_resamples: int = 2000, seed: int = 0,
                    by: tuple[str, ...] = ("source", "condition")) -> pd.DataFrame:
    """Per source (people, each machine observer) and condition: Spearman's rho between the
    calibration units' scores and their known order, with a percentile bootstrap interval over
    units. Near 1 is what a score must reach before it is trusted on real models."""
    rows = calibration_rows(scores).dropna(subset=["known_order"])  # shortcuts: no order
    keys = [k for k in by if k in rows.columns]
    rng = np.random.default_rng(seed)
    out = []
    for key, part in rows.groupby(keys, sort=True):
        x, y = part["known_order"].to_numpy(float), part["score"].to_numpy(float)
        rho = stats.spearmanr(x, y).statistic if len(part) > 2 else np.nan
        draws = np.empty(n_resamples)
        for i in range(n_resamples):
            pick = rng.integers(0, len(part), len(part))
            with np.errstate(invalid="ignore"):
                draws[i] = stats.spearmanr(x[pick], y[pick]).statistic \
                    if np.ptp(x[pick]) and np.ptp(y[pick]) else np.nan
        low, high = percentile_interval(draws[np.isfinite(draws)], 0.95) \
            if np.isfinite(draws).any() else (np.nan, np.nan)
        key = key if isinstance(key, tuple) else (key,)
        out.append({**dict(zip(keys, key)), "n_units": len(part), "spearman_rho": rho,
                    "ci_low": low, "ci_high": high})
    return pd.DataFrame(out)


def unit_resolution(rows: pd.DataFrame, value: str) -> pd.DataFrame:
    """Per source and condition: the median number of distinct query pairs a unit's score rests
    on (`pairs_per_unit`) and the median standard error of a unit's score over its pairs
    (`unit_se`: the pairs' mean values' SD over the square root of their number; NaN for one
    pair). Two single units closer than about twice `unit_se` are not told apart."""
    pairs = rows.assign(pair=[" ".join(sorted(map(str, p))) for p in zip(rows.query_a,
                                                                            rows.query_b)])
    per_pair = pairs.groupby(["source", "condition", "unit_id", "pair"])[value].mean()
    per_unit = per_pair.astype(float).groupby(["source", "condition", "unit_id"]).agg(
        pairs="size", se=lambda v: v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else np.nan)
    return (per_unit.groupby(["source", "condition"])
            .agg(pairs_per_unit=("pairs", "median"), unit_se=("se", "median")).reset_index())


def psychometric_p(m: np.ndarray, m50: float, width: float, lapse: float) -> np.ndarray:
    """P(correct) at mixing m: from 1 - lapse at no mixing down to chance, halfway at m50."""
    return CHANCE + (1 - lapse - CHANCE) * special.expit(-(np.asarray(m) - m50) / width)


MAX_LAPSE = 0.5  # the curve falls from 1 - lapse to chance
# A fitted curve must beat one constant accuracy by a likelihood-ratio test at this level before
# its m50 is reported: a flat curve (at chance, or at any other accuracy) fits every m50 alike.
RESOLVED_P = 0.05
STARTS = ((0.5, 0.1, 0.02), (1.0, 0.3, 0.02), (0.25, 0.05, 0.05))  # (m50, width, lapse)


def fit_psychometric(m: np.ndarray, correct: np.ndarray,
                     starts: tuple[tuple[float, float, float], ...] = STARTS
                     ) -> tuple[float, float, float]:
    """(m50, width, lapse) by maximum likelihood, the best of Nelder-Mead runs from `starts`;
    m50 within the knobs tested, width > 0, lapse in [0, MAX_LAPSE). A flat curve fits any m50
    alike: `flat_test` says whether the fit resolves one."""
    m, correct = np.asarray(m, float), np.asarray(correct, float)
    low, high = float(m.min()), float(m.max())
    span = max(high - low, 1e-9)

    def unpack(theta: np.ndarray) -> tuple[float, float, float]:
        # the width between 2e-9 (a step) and 5e8 (flat): no division by an underflowed 0
        return (low + span * float(special.expit(theta[0])),
                float(np.exp(np.clip(theta[1], -20, 20))),
                MAX_LAPSE * float(special.expit(theta[2])))

    def loss(theta: np.ndarray) -> float:
        p = np.clip(psychometric_p(m, *unpack(theta)), 1e-9, 1 - 1e-9)
        return -float(np.sum(correct * np.log(p) + (1 - correct) * np.log(1 - p)))

    def start(m50: float, width: float, lapse: float) -> np.ndarray:
        inside = np.clip((m50 - low) / span, 1e-4, 1 - 1e-4)
        return np.array([special.logit(inside), np.log(max(width, 1e-4)),
                         special.logit(np.clip(lapse / MAX_LAPSE, 1e-4, 0.999))])

    best = min((optimize.minimize(loss, start(*s), method="Nelder-Mead",
                                  options={"xatol": 1e-5, "fatol": 1e-8, "maxiter": 4000})
                for s in starts), key=lambda r: r.fun)
    return unpack(best.x)


def flat_test(m: np.ndarray, correct: np.ndarray, fitted: tuple[float, float, float]) -> float:
    """The likelihood-ratio test's p of the fitted curve against one constant accuracy (chi-square,
    2 degrees of freedom: the curve's 3 parameters against 1)."""
    correct = np.asarray(correct, float)
    p = np.clip(psychometric_p(np.asarray(m, float), *fitted), 1e-9, 1 - 1e-9)
    curve = np.sum(correct * np.log(p) + (1 - correct) * np.log(1 - p))
    mean = np.clip(correct.mean(), 1e-9, 1 - 1e-9)
    flat = np.sum(correct * np.log(mean) + (1 - correct) * np.log(1 - mean))
    return float(stats.chi2.sf(max(2 * (curve - flat), 0.0), 2))


def psychometric(responses: pd.DataFrame, n_resamples: int = 200, seed: int = 0
                 ) -> pd.DataFrame:
    """Per condition (explanation type): the psychometric function of proportion correct on
    the polysemantic calibration units against their mixing knob, and its `m50`, the mixing at
    which accuracy has fallen halfway to chance (the explanation's resolution), with a
    percentile interval from refits on participants resampled. A curve that does not beat one
    constant accuracy (`flat_p` >= RESOLVED_P) gets no m50: the note says so."""
    from analysis.scores import main_trials

    rows = calibration_rows(main_trials(responses, calibration=True))
    rows = rows[rows["kind"] == "mixture"]
    rng = np.random.default_rng(seed)
    out = []
    for condition, part in rows.groupby("condition", sort=True):
        fitted = fit_psychometric(part["mixing"], part["correct"])
        m50, width, lapse = fitted
        flat_p = flat_test(part["mixing"], part["correct"], fitted)
        people = part["participant_id"].unique()
        low = high = np.nan
        note = ""
        if flat_p < RESOLVED_P:
            groups = {p: g for p, g in part.groupby("participant_id")}
            draws = []
            for _ in range(n_resamples):
                sample = pd.concat([groups[p] for p in rng.choice(people, len(people))])
                draws.append(fit_psychometric(sample["mixing"], sample["correct"], (fitted,))[0])
            low, high = percentile_interval(np.asarray(draws), 0.95)
        else:
            m50 = width = lapse = np.nan
            note = (f"not resolved: accuracy ({part['correct'].mean():.2f} overall) does not "
                    f"change with m beyond one constant (likelihood-ratio p = {flat_p:.2f}); at "
                    f"chance the explanation resolves nothing, near ceiling m50 lies beyond the "
                    f"knobs tested")
        by_m = part.groupby("mixing")["correct"].agg(["mean", "size"])
        out.append({"condition": condition, "m50": m50, "m50_low": low, "m50_high": high,
                    "width": width, "lapse": lapse, "flat_p": flat_p, "note": note,
                    "n_trials": len(part), "n_participants": len(people),
                    **{f"p_correct_m{m:g}": float(v) for m, v in by_m["mean"].items()}})
    return pd.DataFrame(out)


def control_scores(responses: pd.DataFrame) -> pd.DataFrame:
    """Per participant who met calibration trials mixed into the study (`[calibration]`):
    their number, the share answered correctly (the control score) and the participant's
    accuracy on the study's own main trials; excluded participants included."""
    from analysis.scores import main_trials

    if "is_calibration" not in responses.columns:
        return pd.DataFrame()
    every = main_trials(responses, include_excluded=True, calibration=True)
    known = every[every["is_calibration"].astype(bool)]
    if known.empty:
        return pd.DataFrame()
    out = (known.groupby(["participant_id", "condition"], observed=True)["correct"]
           .agg(n_calibration="size", n_correct="sum").reset_index())
    out["control_score"] = out["n_correct"] / out["n_calibration"]
    study = every[~every["is_calibration"].astype(bool)]
    accuracy = study.groupby("participant_id", observed=True)["correct"].mean()
    out["main_accuracy"] = out["participant_id"].map(accuracy)
    if "excluded" in responses.columns:
        flags = responses.groupby("participant_id", observed=True)["excluded"].first()
        out["excluded"] = out["participant_id"].map(flags).astype(bool)
    return out.sort_values("participant_id", ignore_index=True)


def control_summary(scores: pd.DataFrame) -> pd.DataFrame:
    """How the control score goes with accuracy on the study's own trials: Spearman's rho
    across participants (a control score that tracks it says who was attending)."""
    both = scores.dropna(subset=["control_score", "main_accuracy"])
    varied = len(both) > 2 and both["control_score"].nunique() > 1 \
        and both["main_accuracy"].nunique() > 1
    test = stats.spearmanr(both["control_score"], both["main_accuracy"]) if varied else None
    return pd.DataFrame([{
        "n_participants": len(scores), "mean_control_score": scores["control_score"].mean(),
        "spearman_rho_with_main_accuracy": np.nan if test is None else test.statistic,
        "p_value": np.nan if test is None else test.pvalue}])


def tables(responses: pd.DataFrame, machine: pd.DataFrame, n_resamples: int, seed: int
           ) -> dict[str, pd.DataFrame]:
    """The report's calibration tables (an empty dict when no calibration unit was shown):
    the order check of the people's unit scores and each machine observer's, and the
    psychometric function per explanation type."""
    from analysis.machine import observer_labels
    from analysis.scores import main_trials

    controls = control_scores(responses)
    out = ({"calibration_control_scores": controls,
            "calibration_control_summary": control_summary(controls)}
           if not controls.empty else {})
    people = calibration_rows(main_trials(responses, calibration=True))
    if people.empty:
        return out
    scores = [people.groupby(["unit_id", "condition"])["correct"].mean().rename("score")
              .reset_index().assign(source="people")]
    resolution = [unit_resolution(people.assign(source="people"), "correct")]
    bots = (calibration_rows(main_trials(machine, calibration=True)) if not machine.empty
            else people.iloc[:0])
    if not bots.empty:
        bots = bots.assign(source=observer_labels(bots))
        scores.append(bots.groupby(["source", "unit_id", "condition"])["p_correct"].mean()
                      .rename("score").reset_index())
        resolution.append(unit_resolution(bots, "p_correct"))
    order = order_agreement(pd.concat(scores, ignore_index=True), n_resamples, seed)
    out["calibration_order"] = order.merge(pd.concat(resolution, ignore_index=True),
                                           on=["source", "condition"], how="left")
    if (people["kind"] == "mixture").any():
        out["calibration_psychometric"] = psychometric(responses, min(n_resamples, 200),
                                                       seed + 1)
    return out
