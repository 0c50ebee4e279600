"""`interpsy stimuli proxies SET --out DIR`: how faithful simplified proxies of each unit are, in
and out of distribution, in the task's own currency (torch).

Images: a fitting split and an evaluation split of the set's image source, disjoint from each
other and from every natural image the set shows (seeded); the evaluation split shifted by each
of the set's shifted pools (or a domain's images) is the out-of-distribution pool. Per unit,
proxy kind and k of the sweep:
- `agreement`: the share of the set's real query pairs (every batch and difficulty; in
  distribution, and per shifted distribution) the proxy orders like the unit (max query above
  min query; a tie counts half);
- `spearman`: rank correlation of proxy and unit activations over the evaluation pool;
- `top9`: the share of the unit's 9 most activating evaluation images among the proxy's 9.
The summary gives per unit and proxy the smallest k whose in-distribution agreement reaches
95% and, at that k, the agreement out of distribution: a proxy faithful in distribution and not
out of it is the illusion signature.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from experiments.stimulus_set import StimulusSet, load_stimulus_set
from experiments.vocabulary import IN_DISTRIBUTION
from stimuli.build import _relative_source
from stimuli.errors import StimuliError
from stimuli.images import crop_tensor, list_images, load_shown
from stimuli.proxies import (
    KINDS,
    UnitSite,
    apply_module,
    capture_inputs,
    fit_rows,
    full_size,
    proxy,
    sweep,
)
from stimuli.shifts import PoolShift

AGREEMENT_TARGET = 0.95
TOP = 9
TABLE = "proxy_faithfulness.csv"
SUMMARY = "proxy_summary.csv"
RECORD = "proxies.json"


def _pixels(files: list[str], prep, shift: PoolShift | None = None,
            indices: list[int] | None = None) -> torch.Tensor:
    """uint8 (N, 3, crop, crop) shown crops of files, shifted (seeded by pool index) if asked."""
    out = []
    for n, file in enumerate(files):
        image = np.asarray(load_shown(file, prep))
        if shift is not None:
            image = shift(image, indices[n])
        out.append(torch.from_numpy(image.copy()).permute(2, 0, 1))
    return torch.stack(out)


def split_images(stimulus_set: StimulusSet, source: str, n_fit: int, n_eval: int, seed: int
                 ) -> tuple[list[int], list[int], list[str]]:
    """(fitting indices, evaluation indices, source files): disjoint, seeded, none of them an
    image the set shows (in distribution or shifted)."""
    files = [str(p) for p in list_images(source)]
    domains = [label for label, record in
               (stimulus_set.manifest.get("query_distributions") or {}).items()
               if "shift" not in record]  # other folders: their names are not the source's
    natural = stimulus_set.images[(stimulus_set.images.kind == "natural")
                                  & ~stimulus_set.images.distribution.isin(domains)]
    if "source" not in natural or (natural.source == "").any():
        raise StimuliError("the set's images.csv has no `source` for its natural images; "
                           "rebuild the set to fit proxies on images it does not show")
    shown = set(natural.source)
    free = [i for i, f in enumerate(files) if _relative_source(f, source) not in shown]
    if len(free) < n_fit + n_eval:
        raise StimuliError(f"{source}: {len(free)} images the set does not show; {n_fit} "
                           f"fitting and {n_eval} evaluation images need {n_fit + n_eval} "
                           f"(--fit-images, --eval-images)")
    order = np.random.default_rng(seed).permutation(free)
    return sorted(order[:n_fit].tolist()), sorted(order[n_fit:n_fit + n_eval].tolist()), files


def _pairs(stimulus_set: StimulusSet, unit_id: str) -> dict[str, list[tuple[str, str]]]:
    """The unit's query pairs (max path, min path) by query distribution."""
    rows = stimulus_set.images[(stimulus_set.images.unit_id == unit_id)
                               & stimulus_set.images.role.isin(["query_max", "query_min"])
                               & (stimulus_set.images.kind == "natural")]
    out: dict[str, list[tuple[str, str]]] = {}
    for (distribution, _, _), group in rows.groupby(["distribution", "difficulty", "batch"]):
        by_role = group.set_index("role").path
        out.setdefault(distribution, []).append((by_role["query_max"], by_role["query_min"]))
    return out


def _agreement(truth: np.ndarray, values: np.ndarray) -> float:
    """Share of query pairs (rows) the proxy orders like the unit; a proxy tie counts half."""
    unit = np.sign(truth[:, 0] - truth[:, 1])
    mine = np.sign(values[:, 0] - values[:, 1])
    return float(np.mean((mine == unit) + 0.5 * (mine == 0)))


def _top_overlap(truth: np.ndarray, proxy: np.ndarray) -> float:
    top = min(TOP, len(truth))
    return len(set(np.argsort(-truth)[:top]) & set(np.argsort(-proxy)[:top])) / top


def _pools(stimulus_set: StimulusSet, files: list[str], evaluation: list[int], prep,
           n_eval: int) -> dict[str, torch.Tensor]:
    """The evaluation pools: `in`, and each of the set's shifted pools or domains."""
    pools = {IN_DISTRIBUTION: _pixels([files[i] for i in evaluation], prep)}
    for label, record in (stimulus_set.manifest.get("query_distributions") or {}).items():
        if "shift" in record:
            shift = PoolShift(record["shift"], int(record["severity"]), int(record["seed"]))
            pools[label] = _pixels([files[i] for i in evaluation], prep, shift, evaluation)
        else:
            domain = [str(p) for p in list_images(record["domain"])][:n_eval]
            pools[label] = _pixels(domain, prep)
    return pools


def faithfulness(set_dir: str | Path, out: str | Path, kinds: tuple[str, ...] = KINDS,
                 ks: list[int] | None = None, n_fit: int = 200, n_eval: int = 200,
                 images: str | None = None, pretrained: bool = True,
                 weights_path: str | None = None, device: str = "cpu", seed: int = 0,
                 progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every proxy of `kinds` at each k of the sweep for every unit of a set; write the
    long table, the summary and the settings into `out`; return (table, summary)."""
    from tqdm.auto import tqdm

    from stimuli.mining import normalizer
    from stimuli.registry import get_spec, load_model

    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise StimuliError(f"unknown proxy {unknown[0]!r}; use {', '.join(KINDS)}")
    t0 = time.perf_counter()
    stimulus_set = load_stimulus_set(set_dir, verify_hashes=False)
    manifest = stimulus_set.manifest
    spec = get_spec(manifest["model"])
    model = load_model(manifest["model"], pretrained=pretrained, weights_path=weights_path,
                       device=device)
    normalize = normalizer(spec, torch.device(device))
    source = images or manifest["dataset"]["source"]
    fitting, evaluation, files = split_images(stimulus_set, source, n_fit, n_eval, seed)
    prep, crop = spec.preprocessing, spec.preprocessing.crop
    fit_pixels = _pixels([files[i] for i in fitting], prep)
    pools = _pools(stimulus_set, files, evaluation, prep, n_eval)
    rows = []
    units = list(stimulus_set.units.itertuples(index=False))
    for unit in tqdm(units, desc="proxies", unit="unit", disable=not progress):
        site = UnitSite(model, spec, unit.layer, int(unit.channel))
        fitted = fit_rows(site, capture_inputs(site, fit_pixels.to(device), normalize),
                          seed=seed)
        inputs = {name: capture_inputs(site, pixels.to(device), normalize)
                  for name, pixels in pools.items()}
        pairs = _pairs(stimulus_set, unit.unit_id)
        pair_inputs = {d: capture_inputs(site, torch.stack(
            [crop_tensor(stimulus_set.path / p, crop, "proxies") for pair in found
             for p in pair]).to(device),
            normalize) for d, found in pairs.items()}
        truth = {name: apply_module(site, x) for name, x in inputs.items()}
        pair_truth = {name: apply_module(site, x).reshape(-1, 2)
                      for name, x in pair_inputs.items()}
        for kind in kinds:
            if kind == "weights" and not hasattr(site.module, "weight"):
                continue
            try:
                full = full_size(site, kind, fitted)
            except StimuliError:
                continue  # the weights proxy on a module without a weight matrix
            for k in sweep(full, ks):
                # k-means has no lossless k: at its cap it is still a simplification
                lossless = k >= full and kind != "prototypes"
                row = {"unit_id": unit.unit_id, "model": unit.model, "layer": unit.layer,
                       "proxy": kind, "k": k, "full": lossless,
                       "at_cap": kind == "prototypes" and k >= full}
                with proxy(site, kind, k, fitted, seed) as simplify:
                    rows += _scored(site, simplify, row, (inputs, truth),
                                    (pair_inputs, pair_truth))
    table = pd.DataFrame(rows)
    summary = summarise(table)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / TABLE, index=False)
    summary.to_csv(folder / SUMMARY, index=False)
    (folder / RECORD).write_text(json.dumps({
        "stimulus_set": str(stimulus_set.path), "model": manifest["model"],
        "pretrained": pretrained, "weights": weights_path or manifest["weights"],
        "kinds": list(kinds), "ks": ks, "fit_images": n_fit, "eval_images": n_eval,
        "image_source": source, "seed": seed, "device": device,
        "agreement_target": AGREEMENT_TARGET, "distributions": list(pools),
        "seconds": round(time.perf_counter() - t0, 1)}, indent=1))
    return table, summary


def _scored(site: UnitSite, simplify, row: dict, pools: tuple[dict, dict],
            pairs: tuple[dict, dict]) -> list[dict]:
    """One proxy's rows against the unit itself (each pool and pair set with the unit's own
    values): agreement on each distribution's query pairs, Spearman correlation and top-9
    overlap on each evaluation pool."""
    rows = []
    pair_inputs, pair_truth = pairs
    for name, x in pair_inputs.items():
        values = apply_module(site, x, simplify).reshape(-1, 2)
        rows.append({**row, "distribution": name, "metric": "agreement",
                     "value": _agreement(pair_truth[name], values), "n": len(values)})
    inputs, truth = pools
    for name, x in inputs.items():
        values = apply_module(site, x, simplify)
        with warnings.catch_warnings():  # a constant proxy: NaN
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            rho = stats.spearmanr(truth[name], values).statistic
        rows += [{**row, "distribution": name, "metric": "spearman", "value": float(rho),
                  "n": len(values)},
                 {**row, "distribution": name, "metric": "top9",
                  "value": _top_overlap(truth[name], values), "n": len(values)}]
    return rows


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Per unit and proxy: the smallest k reaching AGREEMENT_TARGET in distribution and the
    agreement of each distribution at that k (NaN k when no k of the sweep reaches it)."""
    agreement = table[table.metric == "agreement"].pivot_table(
        index=["unit_id", "model", "layer", "proxy", "k"], columns="distribution",
        values="value").reset_index()
    rows = []
    for (unit_id, model, layer, kind), group in agreement.groupby(
            ["unit_id", "model", "layer", "proxy"], sort=False):
        group = group.sort_values("k")
        enough = group[group[IN_DISTRIBUTION] >= AGREEMENT_TARGET]
        row = {"unit_id": unit_id, "model": model, "layer": layer, "proxy": kind,
               "k_full": int(group.k.max()), "k95": np.nan}
        if not enough.empty:
            first = enough.iloc[0]
            row["k95"] = int(first.k)
            for column in group.columns:
                if column not in ("unit_id", "model", "layer", "proxy", "k"):
                    row[f"agreement_{column}"] = float(first[column])
        rows.append(row)
    return pd.DataFrame(rows)


def parse_proxy(text: str) -> tuple[str, int]:
    """`KIND:K` (e.g. rank:8) as (kind, k), or a StimuliError naming what is wrong."""
    kind, _, k = text.removeprefix("proxy:").partition(":")
    if kind not in KINDS or not k.isdigit() or int(k) < 1:
        raise StimuliError(f"proxy {text!r}: expected KIND:K with KIND one of "
                           f"{', '.join(KINDS)} and K >= 1, e.g. rank:8")
    return kind, int(k)


def proxy_values(units: dict[str, set[str]], image_files: dict, text: str, n_fit: int = 200,
                 images: str | None = None, pretrained: bool = True,
                 weights_path: str | None = None, device: str = "cpu", seed: int = 0
                 ) -> dict[str, np.ndarray]:
    """Per image id, the activation of the proxy `text` (KIND:K) of the unit whose trials show
    it (`units`: unit_id -> image ids; `image_files`: image id -> ImageFile), each proxy fitted
    on `n_fit` images its set never shows."""
    from stimuli.mining import normalizer
    from stimuli.registry import get_spec, load_model

    kind, k = parse_proxy(text)
    values: dict[str, np.ndarray] = {}
    by_set: dict[Path, list[str]] = {}
    for unit_id, shown in units.items():
        by_set.setdefault(Path(image_files[next(iter(shown))].set_dir), []).append(unit_id)
    for set_dir, unit_ids in by_set.items():
        stimulus_set = load_stimulus_set(set_dir, verify_images=False)
        name = stimulus_set.manifest["model"]
        spec = get_spec(name)
        model = load_model(name, pretrained=pretrained, weights_path=weights_path, device=device)
        normalize = normalizer(spec, torch.device(device))
        source = images or stimulus_set.manifest["dataset"]["source"]
        fitting, _, files = split_images(stimulus_set, source, n_fit, 0, seed)
        fit_pixels = _pixels([files[i] for i in fitting], spec.preprocessing).to(device)
        table = stimulus_set.units.set_index("unit_id")
        for unit_id in unit_ids:
            site = UnitSite(model, spec, table.layer[unit_id], int(table.channel[unit_id]))
            rows = fit_rows(site, capture_inputs(site, fit_pixels, normalize), seed=seed)
            ids = sorted(units[unit_id])
            pixels = torch.stack([crop_tensor(image_files[i].path, spec.preprocessing.crop,
                                              "proxies") for i in ids]).to(device)
            inputs = capture_inputs(site, pixels, normalize)
            with proxy(site, kind, min(k, full_size(site, kind, rows)), rows, seed) as simplify:
                found = apply_module(site, inputs, simplify)
            values.update({i: np.array([v]) for i, v in zip(ids, found)})
    return values
