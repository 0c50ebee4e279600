"""Simulate IMI-shaped response datasets with known ground truth (seeded)."""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from analysis.load import Dataset, imi_models
from experiments.stimulus_set import unit_key
from experiments.study.schema import coerce

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(60)
_GH_W = _GH_W / _GH_W.sum()


def marginal_accuracy(mu: float | np.ndarray, sd: float) -> np.ndarray:
    """E[sigmoid(mu + z)] for z ~ N(0, sd^2) (Gauss-Hermite)."""
    mu = np.asarray(mu, dtype=float)
    return (expit(mu[..., None] + sd * _GH_X) * _GH_W).sum(axis=-1)


def logit_for_accuracy(target: float, sd: float) -> float:
    """The mean logit whose marginal accuracy under N(0, sd^2) noise is `target`."""
    if not 0 < target < 1:
        raise ValueError(f"accuracy must be in (0, 1), got {target}")
    return brentq(lambda m: float(marginal_accuracy(m, sd)) - target, -20, 20)


def _model_table(models: pd.DataFrame | Sequence[str] | int | None) -> pd.DataFrame:
    if models is None:
        return imi_models()
    if isinstance(models, int):
        params = np.logspace(6.5, 9, models).round()
        return pd.DataFrame({"model": [f"model{i + 1}" for i in range(models)],
                             "parameters": params, "train_images": np.full(models, 1.281167e6),
                             "top1": np.linspace(60, 85, models)})
    if isinstance(models, pd.DataFrame):
        return models.reset_index(drop=True)
    table = imi_models().set_index("model")
    names = list(models)
    out = pd.DataFrame({"model": names})
    for c in ("parameters", "train_images", "top1"):
        out[c] = [table[c].get(n, np.nan) for n in names]
    return out


def simulate(models: pd.DataFrame | Sequence[str] | int | None = None,
             units_per_model: int | Sequence[int] = 84,
             conditions: Sequence[str] = ("natural", "synthetic"),
             responses_per_unit: int = 30,
             trials_per_task: int = 40,
             catch_per_task: int = 5,
             practice_trials: int = 5,
             accuracy: Mapping[str, float] | None = None,
             model_offsets: Mapping[str, float] | None = None,
             scale: str = "parameters",
             scale_slope: float = 0.0,
             model_sd: float = 0.0,
             unit_sd: float = 0.8,
             condition_unit_corr: float = 0.6,
             participant_sd: float = 0.4,
             careless_fraction: float = 0.05,
             repeat_fraction: float = 0.0,
             catch_accuracy: float = 0.97,
             seed: int = 0,
             experiment: str = "simulated",
             difficulties: Mapping[str, float] | None = None,
             distributions: Mapping[str, float] | None = None) -> Dataset:
    """Make a dataset like IMI's (`units_per_model` may differ per model): per model x condition, tasks of `trials_per_task` distinct units
    plus catch trials, one participant per task, every unit answered `responses_per_unit` times.

    Truth: logit P(correct) = mu[condition] + offset[model] + scale_slope * centred log10(scale)
    + unit effect (sd `unit_sd`, correlated across conditions) + participant effect
    (sd `participant_sd`). `accuracy` gives each condition's marginal accuracy for a model with
    zero offset. Careless participants answer at chance (half of them always press row a),
    fail catch trials and are fast. `difficulties` maps each query difficulty (easy, p99, p95,
    p85) to a logit offset; every unit is then answered `responses_per_unit` times per condition
    and difficulty (default: easy only). `distributions` does the same for query distributions
    (`in` and shifted ones, each a logit offset; default: `in` only). Ground truth is in
    `dataset.truth`.
    """
    rng = np.random.default_rng(seed)
    meta = _model_table(models)
    names = meta["model"].astype(str).tolist()
    n_models = len(names)
    conditions = list(conditions)
    accuracy = dict(accuracy or {"natural": 0.85, "synthetic": 0.75, "mixed": 0.8, "none": 0.6})
    total_sd = float(np.hypot(unit_sd, participant_sd))
    mu_c = {c: logit_for_accuracy(accuracy[c], total_sd) for c in conditions}
    offsets = np.array([float((model_offsets or {}).get(m, 0.0)) for m in names])
    if scale_slope:
        x = np.log10(meta[scale].to_numpy(float))
        offsets = offsets + scale_slope * (x - x.mean())
    offsets = offsets + rng.normal(0, model_sd, n_models) if model_sd else offsets
    difficulties = dict(difficulties or {"easy": 0.0})
    distributions = dict(distributions or {"in": 0.0})
    # a cell of the design: (difficulty, query distribution), each with its logit offset
    cells = list(itertools.product(difficulties, distributions))
    diff_names = [f"{d}-{q}" if len(distributions) > 1 else d for d, q in cells]
    diff_offsets = np.array([float(difficulties[d]) + float(distributions[q]) for d, q in cells])

    # units: per model, effects per condition correlated across conditions
    per_model = np.broadcast_to(np.asarray(units_per_model, dtype=int), (n_models,))
    n_units = int(per_model.sum())
    unit_model = np.repeat(np.arange(n_models), per_model)
    channel = np.concatenate([rng.choice(2048, k, replace=False) for k in per_model])
    layer_idx = rng.integers(1, 13, n_units)
    layer = np.array([f"layer{k}" for k in layer_idx])
    unit_ids = np.array([unit_key(names[m], layer[i], channel[i]) for i, m in enumerate(unit_model)])
    if not -1 < condition_unit_corr <= 1:
        raise ValueError(f"condition_unit_corr must be in (-1, 1], not {condition_unit_corr}")
    if condition_unit_corr == 1 and len(conditions) > 1:
        # one effect per unit shared by every condition (the covariance is singular)
        unit_eff = np.repeat(rng.normal(0, unit_sd, (n_units, 1)), len(conditions), axis=1)
    else:
        cov = np.full((len(conditions), len(conditions)), condition_unit_corr) * unit_sd**2
        np.fill_diagonal(cov, unit_sd**2)
        unit_eff = rng.multivariate_normal(np.zeros(len(conditions)), cov, size=n_units,
                                           method="cholesky")
    layer_position = (layer_idx - 0.5) / 12

    # tasks: per model x condition, a cyclic order of units cut into tasks of distinct units
    t_len = min(trials_per_task, int(per_model.min()))
    task_rows = []  # (model, condition index, difficulty index, task number, unit indices)
    for m in range(n_models):
        units_m = np.flatnonzero(unit_model == m)
        for ci in range(len(conditions)):
            for di in range(len(diff_names)):
                order = rng.permutation(units_m)
                seq = np.tile(order, responses_per_unit)
                for t, start in enumerate(range(0, len(seq), t_len)):
                    task_rows.append((m, ci, di, t, seq[start:start + t_len]))
    n_tasks = len(task_rows)
    careless = rng.random(n_tasks) < careless_fraction
    presser = careless & (rng.random(n_tasks) < 0.5)
    p_eff = rng.normal(0, participant_sd, n_tasks)
    pids = np.array([f"P{i + 1:05d}" for i in range(n_tasks)])
    task_ids = np.array([f"{names[m]}-{conditions[ci]}-" + (f"{diff_names[di]}-" if len(
        diff_names) > 1 else "") + f"{t:03d}" for m, ci, di, t, _ in task_rows])

    # main + catch rows, shuffled within each task
    sizes = np.array([len(u) + catch_per_task for *_, u in task_rows])
    row_task = np.repeat(np.arange(n_tasks), sizes)
    unit_col = np.concatenate([np.r_[u, np.full(catch_per_task, -1)] for *_, u in task_rows])
    keys = rng.random(len(row_task)) + row_task
    perm = np.argsort(keys, kind="stable")
    unit_col = unit_col[perm]
    is_catch = unit_col < 0
    task_cond = np.array([ci for _, ci, _, _, _ in task_rows])
    task_diff = np.array([di for _, _, di, _, _ in task_rows])
    cond_idx = task_cond[row_task]
    model_idx = np.array([m for m, *_ in task_rows])[row_task]
    safe_unit = np.where(is_catch, 0, unit_col)
    logit = (np.array([mu_c[c] for c in conditions])[cond_idx] + offsets[model_idx]
             + unit_eff[safe_unit, cond_idx] + p_eff[row_task]
             + diff_offsets[task_diff[row_task]])
    p = np.where(is_catch, catch_accuracy, expit(logit))
    p = np.where(careless[row_task], 0.5, p)
    correct = rng.random(len(p)) < p
    correct_choice = np.where(rng.random(len(p)) < 0.5, "a", "b")
    other = np.where(correct_choice == "a", "b", "a")
    choice = np.where(correct, correct_choice, other)
    press = presser[row_task]
    choice = np.where(press, "a", choice)
    correct = np.where(press, correct_choice == "a", correct)
    n_main_rows = len(row_task)

    # practice rows: blocks of `practice_trials`, repeated until all correct
    attempts = 1 + rng.geometric(np.where(careless, 0.35, 0.7)) - 1
    pr_sizes = attempts * practice_trials
    pr_task = np.repeat(np.arange(n_tasks), pr_sizes)
    pr_attempt = np.concatenate([np.repeat(np.arange(a), practice_trials) for a in attempts])
    last = pr_attempt == attempts[pr_task] - 1
    pr_correct = np.ones(len(pr_task), dtype=bool)
    first_in_block = np.r_[0, np.cumsum(pr_sizes)[:-1]][pr_task] + pr_attempt * practice_trials
    wrong_pos = rng.integers(0, practice_trials, len(pr_task))
    pos_in_block = np.arange(len(pr_task)) - first_in_block
    pr_correct[(~last) & (pos_in_block == wrong_pos)] = False

    # assemble both parts, practice first within each session
    task_all = np.r_[pr_task, row_task]
    phase = np.r_[np.full(len(pr_task), "practice"), np.full(n_main_rows, "main")]
    order = np.lexsort((np.r_[np.zeros(len(pr_task)), np.ones(n_main_rows)], task_all),)
    # lexsort keeps input order within equal keys, so practice precedes main, main stays shuffled
    unit_all = np.r_[np.full(len(pr_task), -2), unit_col][order]
    task_all, phase = task_all[order], phase[order]
    catch_all = np.r_[np.zeros(len(pr_task), bool), is_catch][order]
    correct_all = np.r_[pr_correct, correct][order]
    cc_pr = np.where(rng.random(len(pr_task)) < 0.5, "a", "b")
    cc_all = np.r_[cc_pr, correct_choice][order]
    choice_pr = np.where(pr_correct, cc_pr, np.where(cc_pr == "a", "b", "a"))
    choice_all = np.r_[choice_pr, choice][order]
    attempt_all = np.r_[pr_attempt, np.zeros(n_main_rows, int)][order]
    n = len(task_all)
    starts = np.r_[0, np.cumsum(np.bincount(task_all, minlength=n_tasks))[:-1]]
    trial_index = np.arange(n) - starts[task_all]

    care = careless[task_all]
    conf_p = np.where(correct_all[:, None], [0.15, 0.3, 0.55], [0.45, 0.35, 0.2])
    conf_p = np.where(care[:, None], 1 / 3, conf_p)
    confidence = 1 + (rng.random(n)[:, None] > np.cumsum(conf_p, axis=1)).sum(axis=1)
    confidence = np.minimum(confidence, 3)
    rt = np.exp(rng.normal(np.where(care, np.log(1500), np.log(4000)) +
                           np.where(correct_all, 0, 0.15), 0.5))
    step = rt + 2800.0  # feedback frame and Continue
    csum = np.cumsum(step)
    session_offset = np.r_[0, csum][starts][task_all]
    onset = csum - step - session_offset
    instruction_s = np.exp(rng.normal(np.where(careless, np.log(8), np.log(60)), 0.4))
    t0 = (pd.Timestamp("2024-01-01", tz="UTC")
          + pd.to_timedelta(np.arange(n_tasks) * 600, unit="s"))
    received = (t0[task_all] + pd.to_timedelta(instruction_s[task_all] * 1000 + onset + rt,
                                               unit="ms"))

    row_model = np.where(unit_all >= 0, np.array(names, dtype=object)[unit_model[
        np.maximum(unit_all, 0)]], np.where(unit_all == -1, "catch", "practice"))
    row_layer = np.where(unit_all >= 0, layer[np.maximum(unit_all, 0)], "manual")
    extra = (np.arange(n) % 5)
    row_channel = np.where(unit_all >= 0, channel[np.maximum(unit_all, 0)], extra)
    row_unit = np.where(unit_all >= 0, unit_ids[np.maximum(unit_all, 0)],
                        np.char.add(np.char.add(row_model.astype(str), "/manual/"),
                                    extra.astype(str)))
    batch = rng.integers(0, 11, n)
    responses = pd.DataFrame({
        "experiment": experiment, "participant_id": pids[task_all],
        "session_id": np.char.add("S", pids[task_all]), "task_id": task_ids[task_all],
        "client": "web", "condition": np.array(conditions)[task_cond[task_all]],
        "difficulty": np.array([d for d, _ in cells])[task_diff[task_all]],
        "query_distribution": np.array([q for _, q in cells])[task_diff[task_all]],
        "phase": phase, "is_catch": catch_all,
        "trial_index": trial_index, "model": row_model, "layer": row_layer,
        "channel": row_channel, "unit_id": row_unit, "batch": batch,
        "query_a": np.char.add("img", (np.arange(n) * 2).astype(str)),
        "query_b": np.char.add("img", (np.arange(n) * 2 + 1).astype(str)),
        "correct_choice": cc_all, "choice": choice_all, "correct": correct_all,
        "confidence": confidence, "rt_ms": rt, "stim_onset_ms": onset,
        "response_ms": onset + rt, "server_received_at": received, "attempt": attempt_all})
    responses = coerce(responses, "responses")

    total_s = instruction_s + np.bincount(task_all, weights=step, minlength=n_tasks) / 1000
    n_sessions = np.where(rng.random(n_tasks) < repeat_fraction, 2, 1)
    participants = coerce(pd.DataFrame({
        "experiment": experiment, "participant_id": pids, "source": "prolific",
        "status": "completed", "client": "web", "n_sessions": n_sessions, "started_at": t0,
        "finished_at": t0 + pd.to_timedelta(total_s, unit="s"), "instruction_s": instruction_s,
        "total_s": total_s, "practice_attempts": attempts, "excluded": False,
        "exclusion_reasons": "", "screen_width": 1920, "screen_height": 1080,
        "window_width": 1600, "window_height": 900, "device_pixel_ratio": 1.0,
        "user_agent": "simulated", "frame_rate": 60.0}), "participants")

    unit_rows = pd.DataFrame({
        "experiment": experiment, "unit_id": unit_ids, "model": np.array(names)[unit_model],
        "layer": layer, "channel": channel, "role": "main", "stimulus_set": "simulated",
        "layer_position": layer_position, "fv_activation": rng.gamma(4, 1, n_units),
        "top_natural_activation": rng.gamma(3, 1, n_units),
        "target_responses": responses_per_unit})
    catch_units = pd.DataFrame({
        "experiment": experiment, "unit_id": [f"catch/manual/{i}" for i in range(5)],
        "model": "catch", "layer": "manual", "channel": range(5), "role": "catch",
        "stimulus_set": "simulated", "layer_position": np.nan, "fv_activation": np.nan,
        "top_natural_activation": np.nan, "target_responses": 0})
    units = coerce(pd.concat([unit_rows, catch_units], ignore_index=True), "units")

    main = responses[responses["phase"] == "main"]
    trials = main.drop_duplicates(["task_id", "trial_index"]).assign(
        position=lambda f: f["trial_index"], references_max="", references_min="")
    trials = coerce(trials, "trials")

    # ground truth
    truth_units, truth_models = [], []
    for (ci, c), (di, (d, q)) in itertools.product(enumerate(conditions), enumerate(cells)):
        lp = mu_c[c] + offsets[unit_model] + unit_eff[:, ci] + diff_offsets[di]
        p_unit = marginal_accuracy(lp, participant_sd)
        truth_units.append(pd.DataFrame({"unit_id": unit_ids, "model": np.array(names)[unit_model],
                                         "condition": c, "difficulty": d,
                                         "query_distribution": q, "p_true": p_unit}))
        for m, name in enumerate(names):
            truth_models.append({"model": name, "condition": c, "difficulty": d,
                                 "query_distribution": q,
                                 "score_population": float(marginal_accuracy(
                                     mu_c[c] + offsets[m] + diff_offsets[di], total_sd)),
                                 "score_sample": float(p_unit[unit_model == m].mean()),
                                 "logit_offset": offsets[m]})
    truth = {"models": pd.DataFrame(truth_models),
             "units": pd.concat(truth_units, ignore_index=True),
             "careless": sorted(pids[careless].tolist()),
             "row_pressers": sorted(pids[presser].tolist()),
             "params": {"seed": seed, "accuracy": accuracy, "scale": scale,
                        "scale_slope": scale_slope, "unit_sd": unit_sd,
                        "participant_sd": participant_sd, "model_sd": model_sd,
                        "careless_fraction": careless_fraction, "mu": mu_c,
                        "difficulties": difficulties, "distributions": distributions}}
    models_out = meta.copy()
    return Dataset(responses=responses, participants=participants, units=units, trials=trials,
                   models=models_out, source=f"simulate(seed={seed})", truth=truth)


__all__ = ["logit_for_accuracy", "marginal_accuracy", "simulate"]
