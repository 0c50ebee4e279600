"""Simulate IMI-shaped response datasets with known ground truth (seeded)."""
from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit

from analysis.load import Dataset, imi_models
from experiments.stimulus_set import unit_key
from experiments.study.design import fill_tasks
from experiments.study.schema import coerce
from experiments.tasks import get_task

_TASK = get_task("imi_2afc")  # the paradigm a simulated participant answers
_FIRST_KEY = _TASK.keys[0]  # what a careless row-presser always presses
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


@dataclass(frozen=True)
class Simulation:
    """What `simulate` makes: the design (models, units, conditions, tasks, catch and practice
    trials), the truth (accuracies, offsets, scale trend, the random effects' SDs) and the
    participants (careless, repeating), seeded. See `simulate` for the model."""

    models: pd.DataFrame | Sequence[str] | int | None = None
    units_per_model: int | Sequence[int] = 84
    conditions: Sequence[str] = ("natural", "synthetic")
    responses_per_unit: int = 30
    trials_per_task: int = 40
    catch_per_task: int = 5
    practice_trials: int = 5
    accuracy: Mapping[str, float] | None = None
    model_offsets: Mapping[str, float] | None = None
    scale: str = "parameters"
    scale_slope: float = 0.0
    model_sd: float = 0.0
    unit_sd: float = 0.8
    condition_unit_corr: float = 0.6
    participant_sd: float = 0.4
    careless_fraction: float = 0.05
    repeat_fraction: float = 0.0
    catch_accuracy: float = 0.97
    seed: int = 0
    experiment: str = "simulated"
    difficulties: Mapping[str, float] | None = None
    distributions: Mapping[str, float] | None = None


@dataclass
class _Truth:
    """The generating model's fixed part: condition intercepts, model offsets, design cells."""

    names: list[str]
    conditions: list[str]
    accuracy: dict[str, float]
    mu: dict[str, float]
    offsets: np.ndarray
    difficulties: dict[str, float]
    distributions: dict[str, float]
    cells: list[tuple[str, str]]  # (difficulty, query distribution)
    cell_names: list[str]
    cell_offsets: np.ndarray


@dataclass
class _Units:
    """The simulated units: model, layer, channel, id and per-condition effect."""

    per_model: np.ndarray
    model: np.ndarray
    channel: np.ndarray
    layer_index: np.ndarray
    layer: np.ndarray
    ids: np.ndarray
    effect: np.ndarray  # (unit, condition)


@dataclass
class _Tasks:
    """One participant per task: its model, condition, cell, units and traits."""

    rows: list[tuple[int, int, int, int, np.ndarray]]  # model, condition, cell, number, units
    careless: np.ndarray
    presser: np.ndarray
    effect: np.ndarray
    pids: np.ndarray
    ids: np.ndarray

    @property
    def condition(self) -> np.ndarray:
        return np.array([ci for _, ci, _, _, _ in self.rows])

    @property
    def cell(self) -> np.ndarray:
        return np.array([di for _, _, di, _, _ in self.rows])


def _truth(sim: Simulation, meta: pd.DataFrame, rng: np.random.Generator) -> _Truth:
    names = meta["model"].astype(str).tolist()
    conditions = list(sim.conditions)
    accuracy = dict(sim.accuracy or {"natural": 0.85, "synthetic": 0.75, "mixed": 0.8,
                                     "none": 0.6})
    total_sd = float(np.hypot(sim.unit_sd, sim.participant_sd))
    mu = {c: logit_for_accuracy(accuracy[c], total_sd) for c in conditions}
    offsets = np.array([float((sim.model_offsets or {}).get(m, 0.0)) for m in names])
    if sim.scale_slope:
        x = np.log10(meta[sim.scale].to_numpy(float))
        offsets = offsets + sim.scale_slope * (x - x.mean())
    offsets = offsets + rng.normal(0, sim.model_sd, len(names)) if sim.model_sd else offsets
    difficulties = dict(sim.difficulties or {"easy": 0.0})
    distributions = dict(sim.distributions or {"in": 0.0})
    # a cell of the design: (difficulty, query distribution), each with its logit offset
    cells = list(itertools.product(difficulties, distributions))
    cell_names = [f"{d}-{q}" if len(distributions) > 1 else d for d, q in cells]
    cell_offsets = np.array([float(difficulties[d]) + float(distributions[q]) for d, q in cells])
    return _Truth(names, conditions, accuracy, mu, offsets, difficulties, distributions, cells,
                  cell_names, cell_offsets)


def _draw_units(sim: Simulation, truth: _Truth, rng: np.random.Generator) -> _Units:
    """Units per model, their effects per condition correlated across conditions."""
    n_models, n_conditions = len(truth.names), len(truth.conditions)
    per_model = np.broadcast_to(np.asarray(sim.units_per_model, dtype=int), (n_models,))
    n_units = int(per_model.sum())
    unit_model = np.repeat(np.arange(n_models), per_model)
    channel = np.concatenate([rng.choice(2048, k, replace=False) for k in per_model])
    layer_index = rng.integers(1, 13, n_units)
    layer = np.array([f"layer{k}" for k in layer_index])
    ids = np.array([unit_key(truth.names[m], layer[i], channel[i])
                    for i, m in enumerate(unit_model)])
    corr = sim.condition_unit_corr
    if not -1 < corr <= 1:
        raise ValueError(f"condition_unit_corr must be in (-1, 1], not {corr}")
    if corr == 1 and n_conditions > 1:
        # one effect per unit shared by every condition (the covariance is singular)
        effect = np.repeat(rng.normal(0, sim.unit_sd, (n_units, 1)), n_conditions, axis=1)
    else:
        cov = np.full((n_conditions, n_conditions), corr) * sim.unit_sd**2
        np.fill_diagonal(cov, sim.unit_sd**2)
        effect = rng.multivariate_normal(np.zeros(n_conditions), cov, size=n_units,
                                         method="cholesky")
    return _Units(per_model, unit_model, channel, layer_index, layer, ids, effect)


def _draw_tasks(sim: Simulation, truth: _Truth, units: _Units, rng: np.random.Generator
                ) -> _Tasks:
    """Per model x condition x cell, tasks of distinct units filled least-used-first as the
    design fills them; one participant per task, some careless (half of those always press the
    first key)."""
    t_len = min(sim.trials_per_task, int(units.per_model.min()))
    rows = []
    for m in range(len(truth.names)):
        units_m = np.flatnonzero(units.model == m).tolist()
        for ci in range(len(truth.conditions)):
            for di in range(len(truth.cell_names)):
                for t, chosen in enumerate(fill_tasks(units_m, t_len, sim.responses_per_unit,
                                                      rng)):
                    rows.append((m, ci, di, t, np.array(chosen, dtype=int)))
    n_tasks = len(rows)
    careless = rng.random(n_tasks) < sim.careless_fraction
    presser = careless & (rng.random(n_tasks) < 0.5)
    effect = rng.normal(0, sim.participant_sd, n_tasks)
    pids = np.array([f"P{i + 1:05d}" for i in range(n_tasks)])
    ids = np.array([f"{truth.names[m]}-{truth.conditions[ci]}-" + (
        f"{truth.cell_names[di]}-" if len(truth.cell_names) > 1 else "") + f"{t:03d}"
        for m, ci, di, t, _ in rows])
    return _Tasks(rows, careless, presser, effect, pids, ids)


def _balanced_keys(block: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Answer keys of rows in contiguous blocks, balanced within each block as a planned task's."""
    if (np.diff(block) < 0).any():
        raise ValueError("the rows must come block by block, in increasing block order")
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]]) if len(block) else block
    sizes = np.diff(np.r_[starts, len(block)])
    return np.array([key for n in sizes for key in _TASK.balanced_keys(int(n), rng)], dtype=str)


def _other_key(keys: np.ndarray) -> np.ndarray:
    """The wrong answer of each 2-AFC trial."""
    first, second = _TASK.keys
    return np.where(keys == first, second, first)


def _main_rows(sim: Simulation, truth: _Truth, units: _Units, tasks: _Tasks,
               rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Main and catch rows, shuffled within each task, answered by the generating model."""
    catch = sim.catch_per_task
    sizes = np.array([len(u) + catch for *_, u in tasks.rows])
    row_task = np.repeat(np.arange(len(tasks.rows)), sizes)
    unit_col = np.concatenate([np.r_[u, np.full(catch, -1)] for *_, u in tasks.rows])
    perm = np.argsort(rng.random(len(row_task)) + row_task, kind="stable")
    unit_col = unit_col[perm]
    is_catch = unit_col < 0
    cond_idx = tasks.condition[row_task]
    model_idx = np.array([m for m, *_ in tasks.rows])[row_task]
    safe_unit = np.where(is_catch, 0, unit_col)
    logit = (np.array([truth.mu[c] for c in truth.conditions])[cond_idx]
             + truth.offsets[model_idx] + units.effect[safe_unit, cond_idx]
             + tasks.effect[row_task] + truth.cell_offsets[tasks.cell[row_task]])
    p = np.where(is_catch, sim.catch_accuracy, expit(logit))
    p = np.where(tasks.careless[row_task], 0.5, p)
    correct = rng.random(len(p)) < p
    correct_choice = _balanced_keys(row_task, rng)
    choice = np.where(correct, correct_choice, _other_key(correct_choice))
    press = tasks.presser[row_task]
    return {"task": row_task, "unit": unit_col, "is_catch": is_catch,
            "correct": np.where(press, correct_choice == _FIRST_KEY, correct),
            "correct_choice": correct_choice, "choice": np.where(press, _FIRST_KEY, choice)}


def _practice_rows(sim: Simulation, tasks: _Tasks, rng: np.random.Generator
                   ) -> dict[str, np.ndarray]:
    """Practice blocks of `practice_trials`, repeated until one is all correct."""
    k = sim.practice_trials
    attempts = 1 + rng.geometric(np.where(tasks.careless, 0.35, 0.7)) - 1
    sizes = attempts * k
    row_task = np.repeat(np.arange(len(tasks.rows)), sizes)
    attempt = np.concatenate([np.repeat(np.arange(a), k) for a in attempts])
    last = attempt == attempts[row_task] - 1
    correct = np.ones(len(row_task), dtype=bool)
    first_in_block = np.r_[0, np.cumsum(sizes)[:-1]][row_task] + attempt * k
    wrong_pos = rng.integers(0, k, len(row_task))
    correct[(~last) & (np.arange(len(row_task)) - first_in_block == wrong_pos)] = False
    return {"task": row_task, "attempt": attempt, "correct": correct, "attempts": attempts}


def _sessions(sim: Simulation, truth: _Truth, units: _Units, tasks: _Tasks,
              main: dict[str, np.ndarray], practice: dict[str, np.ndarray],
              rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Practice then main rows per session, with confidence, timing and the participants."""
    rows = _in_session_order(tasks, main, practice, rng)
    timing = _timing(tasks, rows, rng)
    responses = _response_table(sim, truth, units, tasks, rows, timing, rng)
    n_tasks = len(tasks.rows)
    total_s = timing["instruction_s"] + np.bincount(rows["task"], weights=timing["step"],
                                                    minlength=n_tasks) / 1000
    n_sessions = np.where(rng.random(n_tasks) < sim.repeat_fraction, 2, 1)
    t0 = timing["t0"]
    participants = coerce(pd.DataFrame({
        "experiment": sim.experiment, "participant_id": tasks.pids, "source": "prolific",
        "status": "completed", "client": "web", "n_sessions": n_sessions, "started_at": t0,
        "finished_at": t0 + pd.to_timedelta(total_s, unit="s"),
        "instruction_s": timing["instruction_s"], "total_s": total_s,
        "practice_attempts": practice["attempts"], "excluded": False,
        "exclusion_reasons": "", "screen_width": 1920, "screen_height": 1080,
        "window_width": 1600, "window_height": 900, "device_pixel_ratio": 1.0,
        "user_agent": "simulated", "frame_rate": 60.0}), "participants")
    return responses, participants


def _in_session_order(tasks: _Tasks, main: dict[str, np.ndarray],
                      practice: dict[str, np.ndarray], rng: np.random.Generator
                      ) -> dict[str, np.ndarray]:
    """Every row, practice before main within each session (main keeps its shuffle), with the
    practice rows' answer keys and choices and each row's index in its session."""
    n_main, n_practice = len(main["task"]), len(practice["task"])
    task_all = np.r_[practice["task"], main["task"]]
    phase = np.r_[np.full(n_practice, "practice"), np.full(n_main, "main")]
    # lexsort keeps input order within equal keys, so practice precedes main, main stays shuffled
    order = np.lexsort((np.r_[np.zeros(n_practice), np.ones(n_main)], task_all),)
    blocks = practice["task"] * (practice["attempt"].max(initial=0) + 1) + practice["attempt"]
    cc_pr = _balanced_keys(blocks, rng)
    choice_pr = np.where(practice["correct"], cc_pr, _other_key(cc_pr))
    task_all = task_all[order]
    starts = np.r_[0, np.cumsum(np.bincount(task_all, minlength=len(tasks.rows)))[:-1]]
    return {"task": task_all, "phase": phase[order], "starts": starts,
            "trial_index": np.arange(len(task_all)) - starts[task_all],
            "unit": np.r_[np.full(n_practice, -2), main["unit"]][order],
            "is_catch": np.r_[np.zeros(n_practice, bool), main["is_catch"]][order],
            "correct": np.r_[practice["correct"], main["correct"]][order],
            "correct_choice": np.r_[cc_pr, main["correct_choice"]][order],
            "choice": np.r_[choice_pr, main["choice"]][order],
            "attempt": np.r_[practice["attempt"], np.zeros(n_main, int)][order]}


def _timing(tasks: _Tasks, rows: dict[str, np.ndarray], rng: np.random.Generator
            ) -> dict[str, Any]:
    """Confidence, reaction times, onsets and arrival times (careless participants are fast)."""
    task_all, correct = rows["task"], rows["correct"]
    n = len(task_all)
    care = tasks.careless[task_all]
    conf_p = np.where(correct[:, None], [0.15, 0.3, 0.55], [0.45, 0.35, 0.2])
    conf_p = np.where(care[:, None], 1 / 3, conf_p)
    confidence = 1 + (rng.random(n)[:, None] > np.cumsum(conf_p, axis=1)).sum(axis=1)
    rt = np.exp(rng.normal(np.where(care, np.log(1500), np.log(4000)) +
                           np.where(correct, 0, 0.15), 0.5))
    step = rt + 2800.0  # feedback frame and Continue
    csum = np.cumsum(step)
    onset = csum - step - np.r_[0, csum][rows["starts"]][task_all]
    instruction_s = np.exp(rng.normal(np.where(tasks.careless, np.log(8), np.log(60)), 0.4))
    t0 = (pd.Timestamp("2024-01-01", tz="UTC")
          + pd.to_timedelta(np.arange(len(tasks.rows)) * 600, unit="s"))
    received = (t0[task_all] + pd.to_timedelta(instruction_s[task_all] * 1000 + onset + rt,
                                               unit="ms"))
    return {"confidence": np.minimum(confidence, 3), "rt": rt, "step": step, "onset": onset,
            "instruction_s": instruction_s, "t0": t0, "received": received}


def _response_table(sim: Simulation, truth: _Truth, units: _Units, tasks: _Tasks,
                    rows: dict[str, np.ndarray], timing: dict[str, Any],
                    rng: np.random.Generator) -> pd.DataFrame:
    """The responses table (the export's columns) of every row."""
    task_all, unit_all = rows["task"], rows["unit"]
    n = len(task_all)
    known = np.maximum(unit_all, 0)
    row_model = np.where(unit_all >= 0, np.array(truth.names, dtype=object)[units.model[known]],
                         np.where(unit_all == -1, "catch", "practice"))
    extra = (np.arange(n) % 5)
    row_unit = np.where(unit_all >= 0, units.ids[known],
                        np.char.add(np.char.add(row_model.astype(str), "/manual/"),
                                    extra.astype(str)))
    onset, rt = timing["onset"], timing["rt"]
    return coerce(pd.DataFrame({
        "experiment": sim.experiment, "participant_id": tasks.pids[task_all],
        "session_id": np.char.add("S", tasks.pids[task_all]), "task_id": tasks.ids[task_all],
        "client": "web", "condition": np.array(truth.conditions)[tasks.condition[task_all]],
        "difficulty": np.array([d for d, _ in truth.cells])[tasks.cell[task_all]],
        "query_distribution": np.array([q for _, q in truth.cells])[tasks.cell[task_all]],
        "phase": rows["phase"], "is_catch": rows["is_catch"],
        "trial_index": rows["trial_index"], "model": row_model,
        "layer": np.where(unit_all >= 0, units.layer[known], "manual"),
        "channel": np.where(unit_all >= 0, units.channel[known], extra),
        "unit_id": row_unit, "batch": rng.integers(0, 11, n),
        "query_a": np.char.add("img", (np.arange(n) * 2).astype(str)),
        "query_b": np.char.add("img", (np.arange(n) * 2 + 1).astype(str)),
        "correct_choice": rows["correct_choice"], "choice": rows["choice"],
        "correct": rows["correct"], "confidence": timing["confidence"], "rt_ms": rt,
        "stim_onset_ms": onset, "response_ms": onset + rt,
        "server_received_at": timing["received"], "attempt": rows["attempt"]}), "responses")


def _unit_table(sim: Simulation, truth: _Truth, units: _Units, tasks: _Tasks,
                rng: np.random.Generator) -> pd.DataFrame:
    """The units table: the main units, then five catch units."""
    n_units = len(units.ids)
    unit_rows = pd.DataFrame({
        "experiment": sim.experiment, "unit_id": units.ids,
        "model": np.array(truth.names)[units.model], "layer": units.layer,
        "channel": units.channel, "role": "main", "stimulus_set": "simulated",
        "layer_position": (units.layer_index - 0.5) / 12,
        "fv_activation": rng.gamma(4, 1, n_units),
        "top_natural_activation": rng.gamma(3, 1, n_units),
        "target_responses": np.bincount(np.concatenate([u for *_, u in tasks.rows]),
                                        minlength=n_units)})  # tasks per unit, as planned
    catch_units = pd.DataFrame({
        "experiment": sim.experiment, "unit_id": [f"catch/manual/{i}" for i in range(5)],
        "model": "catch", "layer": "manual", "channel": range(5), "role": "catch",
        "stimulus_set": "simulated", "layer_position": np.nan, "fv_activation": np.nan,
        "top_natural_activation": np.nan, "target_responses": 0})
    return coerce(pd.concat([unit_rows, catch_units], ignore_index=True), "units")


def _ground_truth(sim: Simulation, truth: _Truth, units: _Units, tasks: _Tasks
                  ) -> dict[str, Any]:
    """Each unit's and model's true accuracy per condition and cell, who was careless, and the
    settings."""
    total_sd = float(np.hypot(sim.unit_sd, sim.participant_sd))
    truth_units, truth_models = [], []
    for (ci, c), (di, (d, q)) in itertools.product(enumerate(truth.conditions),
                                                   enumerate(truth.cells)):
        lp = truth.mu[c] + truth.offsets[units.model] + units.effect[:, ci] + truth.cell_offsets[di]
        p_unit = marginal_accuracy(lp, sim.participant_sd)
        truth_units.append(pd.DataFrame({"unit_id": units.ids,
                                         "model": np.array(truth.names)[units.model],
                                         "condition": c, "difficulty": d,
                                         "query_distribution": q, "p_true": p_unit}))
        for m, name in enumerate(truth.names):
            truth_models.append({"model": name, "condition": c, "difficulty": d,
                                 "query_distribution": q,
                                 "score_population": float(marginal_accuracy(
                                     truth.mu[c] + truth.offsets[m] + truth.cell_offsets[di],
                                     total_sd)),
                                 "score_sample": float(p_unit[units.model == m].mean()),
                                 "logit_offset": truth.offsets[m]})
    return {"models": pd.DataFrame(truth_models),
            "units": pd.concat(truth_units, ignore_index=True),
            "careless": sorted(tasks.pids[tasks.careless].tolist()),
            "row_pressers": sorted(tasks.pids[tasks.presser].tolist()),
            "params": {"seed": sim.seed, "accuracy": truth.accuracy, "scale": sim.scale,
                       "scale_slope": sim.scale_slope, "unit_sd": sim.unit_sd,
                       "participant_sd": sim.participant_sd, "model_sd": sim.model_sd,
                       "careless_fraction": sim.careless_fraction, "mu": truth.mu,
                       "difficulties": truth.difficulties,
                       "distributions": truth.distributions}}


def simulate(**settings: Any) -> Dataset:
    """Make a dataset like IMI's from `Simulation(**settings)` (`units_per_model` may differ
    per model): per model x condition, tasks of `trials_per_task` distinct units plus catch
    trials, filled least-used-first and keyed as the design plans a study
    (`experiments.study.design.fill_tasks`, the task type's balanced keys), one participant per
    task, every unit answered `responses_per_unit` times (or once more where the tasks do not
    divide evenly).

    Truth: logit P(correct) = mu[condition] + offset[model] + scale_slope * centred log10(scale)
    + unit effect (sd `unit_sd`, correlated across conditions) + participant effect
    (sd `participant_sd`). `accuracy` gives each condition's marginal accuracy for a model with
    zero offset. Careless participants answer at chance (half of them always press the first key, a),
    fail catch trials and are fast. `difficulties` maps each query difficulty (easy, p99, p95,
    p85) to a logit offset; every unit is then answered `responses_per_unit` times per condition
    and difficulty (default: easy only). `distributions` does the same for query distributions
    (`in` and shifted ones, each a logit offset; default: `in` only). Ground truth is in
    `dataset.truth`.
    """
    sim = Simulation(**settings)
    rng = np.random.default_rng(sim.seed)
    meta = _model_table(sim.models)
    truth = _truth(sim, meta, rng)
    units = _draw_units(sim, truth, rng)
    tasks = _draw_tasks(sim, truth, units, rng)
    main = _main_rows(sim, truth, units, tasks, rng)
    practice = _practice_rows(sim, tasks, rng)
    responses, participants = _sessions(sim, truth, units, tasks, main, practice, rng)
    unit_table = _unit_table(sim, truth, units, tasks, rng)
    trials = coerce(responses[responses["phase"] == "main"].drop_duplicates(
        ["task_id", "trial_index"]).assign(position=lambda f: f["trial_index"],
                                           references_max="", references_min=""), "trials")
    return Dataset(responses=responses, participants=participants, units=unit_table,
                   trials=trials, models=meta.copy(), source=f"simulate(seed={sim.seed})",
                   truth=_ground_truth(sim, truth, units, tasks))


__all__ = ["Simulation", "logit_for_accuracy", "marginal_accuracy", "simulate"]
