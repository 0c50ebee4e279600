"""`interpsy observe`: a machine observer answers a stimulus set's or an experiment's trials and
writes a response dataset in the schema (client `machine`), beside people's (torch)."""
from __future__ import annotations

import json
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from experiments.study.export import write_frames
from experiments.study.schema import SETTINGS_FILE, coerce, tables_for
from stimuli.errors import StimuliError
from stimuli.observers.backbones import Backbone, get_backbone
from stimuli.observers.embeddings import embed_images
from stimuli.observers.observers import Observer, get_observer
from stimuli.observers.trials import TrialSource

OBSERVER_FILE = "observer.json"


@dataclass(frozen=True)
class ObserveOptions:
    """How to answer: the observer, its backbone and alpha, the seed, the device."""

    observer: str = "mis"
    backbone: str = "model:efficientnet-lite0"
    alpha: float | str | None = "published"  # a number, None (hard 0/1) or the backbone's own
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 64
    pretrained: bool = True
    weights_path: str | None = None
    calibrate: str | None = None  # people's answers to the same trials: fit alpha to them
    fit_images: int = 200  # the proxy observer's fitting images (none shown by the set)


def resolve_alpha(alpha: float | str | None, backbone: Backbone | None, observer: Observer
                  ) -> float | None:
    """The alpha to use: a number or None as given; "published": the backbone's published one,
    an error naming the choices when it has none."""
    if alpha != "published":
        return None if alpha is None else float(alpha)
    if not observer.needs_embeddings or observer.hard:
        return None
    if backbone is not None and backbone.default_alpha is not None:
        return backbone.default_alpha
    raise StimuliError(f"no alpha is published for backbone {backbone.name if backbone else '?'}"
                       f" (DreamSim's is 0.16): give --alpha A (from a fit to people's answers "
                       f"on the same kind of trials) or --alpha none for hard 0/1 answers")


def observe(source: TrialSource, out: str | Path, options: ObserveOptions,
            progress: bool = True, fmt: str = "parquet") -> pd.DataFrame:
    """Answer every trial of `source` and write the dataset into `out`: responses, units,
    experiment.json and observer.json (what answered, with which settings). Embeddings are
    cached beside each stimulus set (under `out` when a set's folder is read-only), so a killed
    run resumes where it stopped."""
    out = Path(out)
    observer = get_observer(options.observer)
    why = observer.refusal(source.task)
    if why:
        raise StimuliError(f"observer {observer.name} cannot answer {source.experiment}: {why}")
    backbone = (get_backbone(options.backbone, options.device, options.pretrained,
                             options.weights_path, observer.backbone_output)
                if observer.needs_embeddings else None)
    if options.calibrate is not None and options.alpha != "published":
        raise StimuliError(f"--alpha {options.alpha} and --calibrate exclude each other: "
                           f"calibrating fits alpha")
    alpha = (None if options.calibrate is not None
             else resolve_alpha(options.alpha, backbone, observer))
    embeddings, label = _evidence(source, observer, backbone, options, out, progress)
    fitted_on = 0
    if options.calibrate is not None:
        alpha, fitted_on = calibrate_alpha(source, observer, embeddings, options.calibrate)
    rows = _answers(source, observer, embeddings, alpha, label, options.seed, progress)
    tables = tables_for(source.task.name)
    responses = coerce(pd.DataFrame(rows), "responses", tables)
    units = coerce(source.units.assign(experiment=source.experiment), "units", tables)
    out.mkdir(parents=True, exist_ok=True)
    (out / OBSERVER_FILE).unlink(missing_ok=True)  # written last: its presence means complete
    write_frames({"responses": responses, "units": units}, out, fmt)
    (out / SETTINGS_FILE).write_text(json.dumps([source.settings], indent=2,
                                                    sort_keys=True, default=str))
    record = {"observer": observer.name, "title": observer.title, "alpha": alpha,
              "alpha_source": (f"fit to {fitted_on} answers of people in {options.calibrate}"
                               if options.calibrate else "given"
                               if options.alpha != "published" else "published"),
              "backbone": backbone.facts() if backbone else label, "seed": options.seed,
              "device": options.device, "task_type": source.task.name,
              "source": source.experiment, "trials": len(rows),
              "mean_p_correct": scored_mean(responses), "mean_p_correct_scope": SCORED_SCOPE,
              "scored_trials": int(scored(responses).shape[0]),
              "python": platform.python_version(),
              "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
    (out / OBSERVER_FILE).write_text(json.dumps(record, indent=2, default=str))
    return responses


def _evidence(source: TrialSource, observer, backbone, options: ObserveOptions, out: Path,
              progress: bool) -> tuple[dict[str, np.ndarray], str | None]:
    """What the observer compares (image embeddings, or a proxy's unit values) and its label."""
    if observer.needs_unit_values:
        from stimuli.proxy_faithfulness import parse_proxy, proxy_values

        units: dict[str, set[str]] = {}
        for observed in source.trials:
            units.setdefault(observed.trial.unit.unit_id, set()).update(
                source.task.image_ids(observed.trial.stimulus))
        kind, k = parse_proxy(options.backbone)
        values = proxy_values(units, source.images, options.backbone, options.fit_images,
                              seed=options.seed, pretrained=options.pretrained,
                              weights_path=options.weights_path, device=options.device)
        return values, f"proxy:{kind}:{k}"
    if backbone is None:
        return {}, None
    shown = {i for observed in source.trials
             for i in observer.shown(source.task, observed.trial.stimulus)}
    missing = sorted(shown - set(source.images))
    if missing:
        raise StimuliError(f"{source.experiment}: {len(missing)} images of its trials are "
                           f"not in its stimulus sets, e.g. {missing[0]}")
    return (embed_images(backbone, (source.images[i] for i in sorted(shown)), out,
                         options.batch_size, progress), backbone.name)


def _answers(source: TrialSource, observer, evidence: dict[str, np.ndarray],
             alpha: float | None, label: str | None, seed: int, progress: bool
             ) -> list[dict[str, Any]]:
    """One response row per trial, answered by the observer (seeded)."""
    rng = np.random.default_rng(seed)
    participant = f"M-{observer.name}" + (f"-{label}" if label else "")
    answered_at = datetime.now(UTC)
    rows = []
    for observed in tqdm(source.trials, desc=f"answering ({observer.name})", unit="trial",
                         disable=not progress):
        trial = observed.trial
        made = observer.answer(source.task, trial.stimulus, trial.answer_key, evidence, alpha,
                               rng)
        rows.append({
            "experiment": source.experiment, "participant_id": participant,
            "session_id": f"{participant}/{observed.task_id}", "task_id": observed.task_id,
            "client": "machine", "condition": trial.condition, "difficulty": trial.difficulty,
            "query_distribution": trial.query_distribution,
            "phase": trial.phase, "is_catch": trial.is_catch,
            "is_calibration": trial.is_calibration,
            "trial_index": observed.trial_index, "model": trial.unit.model,
            "layer": trial.unit.layer, "channel": trial.unit.channel,
            "unit_id": trial.unit.unit_id, "batch": trial.batch,
            **source.task.response_values(trial.stimulus, trial.answer_key, made.answer,
                                          made.correct),
            "rt_ms": np.nan, "stim_onset_ms": np.nan, "response_ms": np.nan,
            "server_received_at": answered_at, "attempt": 0, "observer": observer.name,
            "backbone": label, "p_correct": made.p_correct})
    return rows


SCORED_SCOPE = "scored trials: main block, catch and calibration trials left out"


def scored(responses: pd.DataFrame) -> pd.DataFrame:
    """The rows a unit's machine score is made of (SCORED_SCOPE)."""
    mask = (responses["phase"] == "main") & ~responses["is_catch"].astype(bool)
    if "is_calibration" in responses.columns:
        mask &= ~responses["is_calibration"].fillna(False).astype(bool)
    return responses[mask]


def scored_mean(responses: pd.DataFrame) -> float | None:
    """Mean p_correct of the scored trials (None without any)."""
    rows = scored(responses)
    return float(rows["p_correct"].mean()) if len(rows) else None


def calibrate_alpha(source: TrialSource, observer: Observer, embeddings: dict[str, np.ndarray],
                    people: str | Path) -> tuple[float, int]:
    """The alpha that best predicts people's correct and wrong answers (scored trials) to the
    very trials of `source` from the rule's evidence for the right image, and how many answers
    it was fitted on. `people` is their export (`interpsy export`)."""
    from analysis.load import load_dataset  # the export reader (pandas only)
    from stimuli.observers.observers import SimilarityObserver
    from stimuli.observers.rules import fit_alpha

    if not isinstance(observer, SimilarityObserver):
        raise StimuliError(f"observer {observer.name} has no alpha to calibrate")
    answers = load_dataset(people).responses
    answers = answers[(answers["client"] != "machine") & (answers["phase"] == "main")
                      & ~answers["is_catch"].astype(bool)]
    evidence: dict[tuple, float] = {}
    columns = [c for c in ("task_id", "unit_id", "condition", *source.task.trial_columns)
               if c in answers.columns and source.task.trial_columns.get(c, "string") == "string"]
    for observed in source.trials:
        trial = observed.trial
        values = {"task_id": observed.task_id, "unit_id": trial.unit.unit_id,
                  "condition": trial.condition,
                  **source.task.trial_values(trial.stimulus, trial.answer_key)}
        each = observer.evidence(source.task, trial.stimulus, embeddings)
        evidence[tuple(str(values[c]) for c in columns)] = [
            each[trial.answer_key], *(v for o, v in each.items() if o != trial.answer_key)]
    keys = list(zip(*(answers[c].astype(str) for c in columns))) if columns else []
    matched = [(evidence[k], bool(c)) for k, c in zip(keys, answers["correct"]) if k in evidence]
    if len(matched) < 20:
        raise StimuliError(f"--calibrate {people}: {len(matched)} of its {len(answers)} scored "
                           f"answers are to trials of {source.experiment}; give the export of "
                           f"the same experiment")
    delta, correct = (np.array(v) for v in zip(*matched))
    return fit_alpha(delta, correct), len(matched)


def observer_record(folder: str | Path) -> dict[str, Any]:
    """The observer.json of an `observe` output folder."""
    return json.loads((Path(folder) / OBSERVER_FILE).read_text())
