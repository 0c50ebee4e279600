"""Statistical tests: Kruskal-Wallis + Conover/Holm, Brunner-Munzel, paired natural vs synthetic,
and a mixed-effects logistic regression with crossed random effects."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from scipy import sparse, stats
from statsmodels.stats.multitest import multipletests

from analysis.bootstrap import bca_mean
from analysis.load import attach_model_metadata
from analysis.scores import main_trials

STRATA = ("condition", "difficulty")


def _strata(frame: pd.DataFrame, strata: Sequence[str]) -> list[str]:
    return [s for s in strata if s in frame.columns and frame[s].nunique(dropna=False) > 0]


def conover_posthoc(groups: dict[str, np.ndarray]) -> pd.DataFrame:
    """Conover-Iman pairwise tests after Kruskal-Wallis (tie-corrected), Holm-adjusted p-values."""
    names = list(groups)
    samples = [np.asarray(groups[n], dtype=float) for n in names]
    sizes = np.array([len(s) for s in samples], dtype=float)
    pooled = np.concatenate(samples)
    n_total, k = len(pooled), len(samples)
    ranks = stats.rankdata(pooled)
    bounds = np.cumsum(np.r_[0, sizes]).astype(int)
    mean_ranks = np.array([ranks[bounds[i]:bounds[i + 1]].mean() for i in range(k)])
    h = stats.kruskal(*samples).statistic
    s2 = (np.sum(ranks**2) - n_total * (n_total + 1) ** 2 / 4) / (n_total - 1)
    df = n_total - k
    rows = []
    for i, j in itertools.combinations(range(k), 2):
        se = np.sqrt(s2 * (n_total - 1 - h) / df * (1 / sizes[i] + 1 / sizes[j]))
        t = (mean_ranks[i] - mean_ranks[j]) / se if se > 0 else np.nan
        p = 2 * stats.t.sf(abs(t), df) if np.isfinite(t) else np.nan
        rows.append({"group_a": names[i], "group_b": names[j],
                     "mean_rank_a": mean_ranks[i], "mean_rank_b": mean_ranks[j],
                     "t": t, "df": df, "p": p})
    out = pd.DataFrame(rows)
    if len(out):
        ok = out["p"].notna()
        out["p_holm"] = np.nan
        if ok.any():
            out.loc[ok, "p_holm"] = multipletests(out.loc[ok, "p"], method="holm")[1]
    return out


def kruskal_models(units: pd.DataFrame, strata: Sequence[str] = STRATA
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Kruskal-Wallis of unit scores across models per condition, with Conover-Holm post-hoc."""
    keys = _strata(units, strata)
    tests, posthoc = [], []
    for key, frame in units.groupby(keys, observed=True, dropna=False) if keys else [((), units)]:
        key = key if isinstance(key, tuple) else (key,)
        label = dict(zip(keys, key))
        groups = {m: f["score"].to_numpy(float) for m, f in frame.groupby("model", observed=True)}
        groups = {m: g for m, g in groups.items() if len(g) > 0}
        if len(groups) < 2:
            continue
        res = stats.kruskal(*groups.values())
        eps2 = (res.statistic - len(groups) + 1) / (sum(map(len, groups.values())) - len(groups))
        tests.append({**label, "n_models": len(groups),
                      "n_units": int(sum(map(len, groups.values()))), "H": res.statistic,
                      "df": len(groups) - 1, "p": res.pvalue, "epsilon_squared": eps2})
        ph = conover_posthoc(groups)
        for column, value in reversed(list(label.items())):
            ph.insert(0, column, value)
        posthoc.append(ph)
    return pd.DataFrame(tests), (pd.concat(posthoc, ignore_index=True) if posthoc
                                 else pd.DataFrame())


def brunner_munzel(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Brunner-Munzel test of two samples with the effect P(a < b) + 0.5 P(a = b)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    res = stats.brunnermunzel(a, b)
    ranks = stats.rankdata(np.r_[a, b])
    p_hat = (ranks[len(a):].mean() - (len(b) + 1) / 2) / len(a)
    return {"statistic": float(res.statistic), "p": float(res.pvalue), "p_a_less_b": float(p_hat),
            "n_a": len(a), "n_b": len(b)}


def brunner_munzel_pairs(units: pd.DataFrame, strata: Sequence[str] = STRATA) -> pd.DataFrame:
    """Brunner-Munzel for every pair of models within each condition, Holm-adjusted per family."""
    keys = _strata(units, strata)
    out = []
    for key, frame in units.groupby(keys, observed=True, dropna=False) if keys else [((), units)]:
        key = key if isinstance(key, tuple) else (key,)
        groups = {m: f["score"].to_numpy(float) for m, f in frame.groupby("model", observed=True)}
        rows = []
        for ma, mb in itertools.combinations(sorted(groups), 2):
            if len(groups[ma]) < 2 or len(groups[mb]) < 2:
                continue
            res = brunner_munzel(groups[ma], groups[mb])
            rows.append({**dict(zip(keys, key)), "model_a": ma, "model_b": mb,
                         "score_a": groups[ma].mean(), "score_b": groups[mb].mean(), **res})
        if rows:
            fam = pd.DataFrame(rows)
            ok = fam["p"].notna()
            fam["p_holm"] = np.nan
            if ok.any():
                fam.loc[ok, "p_holm"] = multipletests(fam.loc[ok, "p"], method="holm")[1]
            out.append(fam)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def paired_conditions(units: pd.DataFrame, a: str = "natural", b: str = "synthetic",
                      n_resamples: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Per unit score(a) - score(b) for units tested in both: Wilcoxon signed-rank and BCa CI,
    per model and over all models."""
    keys = [k for k in ("model", "unit_id", "difficulty") if k in units.columns]
    wide = (units[units["condition"].isin([a, b])]
            .pivot_table(index=keys, columns="condition", values="score", observed=True)
            .dropna())
    if a not in wide.columns or b not in wide.columns or wide.empty:
        return pd.DataFrame()
    wide = wide.reset_index()
    wide["diff"] = wide[a] - wide[b]
    rng = np.random.default_rng(seed)
    rows = []
    for model, frame in [("all", wide)] + list(wide.groupby("model", observed=True)):
        d = frame["diff"].to_numpy(float)
        if len(d) < 2:
            continue
        mean, low, high = bca_mean(d, n_resamples, 0.95, rng)
        w = stats.wilcoxon(d) if np.any(d != 0) else None
        rows.append({"model": model, "n_units": len(d), f"score_{a}": frame[a].mean(),
                     f"score_{b}": frame[b].mean(), "mean_diff": mean, "ci_low": low,
                     "ci_high": high, "wilcoxon_W": w.statistic if w else np.nan,
                     "p": w.pvalue if w else 1.0,
                     "share_units_a_better": float((d > 0).mean()),
                     "spearman_rho_units": stats.spearmanr(frame[a], frame[b]).statistic
                     if len(d) > 2 else np.nan})
    out = pd.DataFrame(rows)
    out.attrs.update(comparison=f"{a} - {b}", n_resamples=n_resamples, seed=seed)
    return out


def depth_correlation(units: pd.DataFrame, unit_table: pd.DataFrame | None,
                      strata: Sequence[str] = ("condition",)) -> pd.DataFrame:
    """Spearman correlation of unit score with relative layer depth (layer_position)."""
    if unit_table is None or "layer_position" not in unit_table.columns:
        return pd.DataFrame()
    pos = unit_table.drop_duplicates("unit_id").set_index("unit_id")["layer_position"]
    frame = units.assign(layer_position=units["unit_id"].map(pos)).dropna(
        subset=["layer_position"])
    if frame.empty:
        return pd.DataFrame()
    keys = _strata(frame, strata)
    rows = []
    for key, f in frame.groupby(keys + ["model"], observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        if len(f) < 3 or f["layer_position"].nunique() < 2:
            continue
        r = stats.spearmanr(f["layer_position"], f["score"])
        rows.append({**dict(zip(keys + ["model"], key)), "n_units": len(f),
                     "spearman_rho": r.statistic, "p": r.pvalue})
    return pd.DataFrame(rows)


@dataclass
class MixedModelResult:
    """Fixed effects, variance components and the settings of a mixed-effects logistic fit."""

    fixed: pd.DataFrame
    variance: pd.DataFrame
    n_rows: int
    n_used: int
    seed: int
    scale: str | None
    method: str
    notes: list[str] = field(default_factory=list)

    def slope(self) -> pd.Series | None:
        """The row of the scale slope (logit per decade), if the model had one."""
        rows = self.fixed[self.fixed["term"] == "log10_scale"]
        return None if rows.empty else rows.iloc[0]


def mixed_model(responses: pd.DataFrame, models: pd.DataFrame | None = None,
                scale: str | None = "parameters", max_rows: int = 8_000, seed: int = 0,
                model_effect: bool = True, reference: str = "natural",
                fit_method: str = "L-BFGS-B") -> MixedModelResult:
    """Logistic regression of correctness: fixed condition + log10(scale), random intercepts for
    participant and unit (crossed), and model; Bayesian mixed GLM fitted by variational Bayes.

    statsmodels' BinomialBayesMixedGLM.fit_vb is used because it handles thousands of crossed
    random effects in seconds; its mean-field posterior tends to understate uncertainty, so
    intervals are approximate (mean +- 1.96 posterior SD). Large data are fitted on the trials of a
    seeded random subset of participants, up to `max_rows` rows (8,000 keeps the fit near 10 s on 2 cores; raise it
    for tighter estimates). The optimiser is L-BFGS-B: statsmodels' default BFGS keeps a dense
    inverse Hessian over every random effect and takes minutes at IMI's size.
    """
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    data = main_trials(responses)
    n_rows = len(data)
    notes = []
    if n_rows > max_rows:
        # whole participants, in random order, until max_rows trials: keeps each participant's
        # effect estimable and the number of random effects small
        ids = data["participant_id"].unique()
        order = np.random.default_rng(seed).permutation(len(ids))
        sizes = data.groupby("participant_id", observed=True).size().reindex(ids[order])
        keep = sizes.index[np.cumsum(sizes.to_numpy()) <= max_rows]
        data = data[data["participant_id"].isin(keep)]
        notes.append(f"fitted on all trials of {len(keep)} randomly chosen participants "
                     f"({len(data)} of {n_rows} scored trials, seed {seed})")
    data = data.reset_index(drop=True)
    y = data["correct"].to_numpy(float)
    columns, names = [np.ones(len(data))], ["intercept"]
    conditions = sorted(data["condition"].dropna().unique())
    base = reference if reference in conditions else (conditions[0] if conditions else None)
    for c in conditions:
        if c != base:
            columns.append((data["condition"] == c).to_numpy(float))
            names.append(f"condition[{c}]")
    scale_used = None
    if scale is not None and models is not None:
        x = attach_model_metadata(data[["model"]], models, (scale,))[scale].to_numpy(float)
        if np.isfinite(x).all() and (x > 0).all() and np.unique(x).size > 1:
            lx = np.log10(x)
            columns.append(lx - lx.mean())
            names.append("log10_scale")
            scale_used = scale
            notes.append(f"log10({scale}) centred at {lx.mean():.3f}")
        else:
            notes.append(f"no scale term: {scale} missing or constant for some models")
    exog = np.column_stack(columns)
    blocks, ident, vc_names, vcp_names = [], [], [], []
    factors = [("participant", "participant_id"), ("unit", "unit_id")]
    if model_effect and data["model"].nunique() > 1:
        factors.append(("model", "model"))
    for i, (label, column) in enumerate(factors):
        codes, levels = pd.factorize(data[column])
        blocks.append(sparse.csr_array((np.ones(len(data)), (np.arange(len(data)), codes)),
                                       shape=(len(data), len(levels))))
        ident += [i] * len(levels)
        vc_names += [f"{label}:{lv}" for lv in levels]
        vcp_names.append(label)
    exog_vc = sparse.hstack(blocks, format="csr")
    glmm = BinomialBayesMixedGLM(y, exog, exog_vc, np.asarray(ident, dtype=int),
                                 vcp_p=1.0, fe_p=2.0, fep_names=names, vcp_names=vcp_names,
                                 vc_names=vc_names)
    fit = glmm.fit_vb(fit_method=fit_method, rng=np.random.default_rng(seed))
    z = stats.norm.ppf(0.975)
    fixed = pd.DataFrame({"term": names, "estimate": fit.fe_mean, "sd": fit.fe_sd})
    fixed["ci_low"] = fixed["estimate"] - z * fixed["sd"]
    fixed["ci_high"] = fixed["estimate"] + z * fixed["sd"]
    fixed["odds_ratio"] = np.exp(fixed["estimate"])
    if scale_used is not None:
        notes.append("the interval of log10_scale is mean-field VB and too narrow when few "
                     "models inform it (on simulated null data it can exclude 0); for inference "
                     "on scale use the between-model slope, Spearman CI and TOST in Scaling")
    variance = pd.DataFrame({"component": vcp_names, "sd": np.exp(fit.vcp_mean),
                             "sd_low": np.exp(fit.vcp_mean - z * fit.vcp_sd),
                             "sd_high": np.exp(fit.vcp_mean + z * fit.vcp_sd)})
    return MixedModelResult(fixed=fixed, variance=variance, n_rows=n_rows, n_used=len(data),
                            seed=seed, scale=scale_used,
                            method=f"BinomialBayesMixedGLM.fit_vb (statsmodels, mean-field VB, {fit_method})",
                            notes=notes)


__all__ = ["conover_posthoc", "kruskal_models", "brunner_munzel", "brunner_munzel_pairs",
           "paired_conditions", "depth_correlation", "mixed_model", "MixedModelResult"]
