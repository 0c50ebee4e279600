"""Statistical tests: Kruskal-Wallis + Conover/Holm, Brunner-Munzel, paired natural vs synthetic,
and a mixed-effects logistic regression with crossed random effects."""
from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse, stats
from statsmodels.stats.multitest import multipletests

from analysis.bootstrap import _single_thread, bca_mean, too_few
from analysis.load import attach_model_metadata, model_order
from analysis.scaling import DEFAULT_MARGIN, SCALES, TRANSFORMS, tost_slope, transform_scale
from analysis.scores import main_trials
from experiments.vocabulary import DIFFICULTIES, IN_DISTRIBUTION

if TYPE_CHECKING:
    from statsmodels.genmod.bayes_mixed_glm import BayesMixedGLMResults

STRATA = ("condition", "difficulty")


def _strata(frame: pd.DataFrame, strata: Sequence[str]) -> list[str]:
    return [s for s in strata if s in frame.columns and frame[s].nunique(dropna=False) > 0]


def _model_groups(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each model's unit scores, models in IMI's order (so are the pairs compared)."""
    scores = {str(m): f["score"].to_numpy(float) for m, f in frame.groupby("model", observed=True)}
    return {m: scores[m] for m in model_order(scores) if len(scores[m]) > 0}


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
        groups = _model_groups(frame)
        if len(groups) < 2:
            continue
        res = stats.kruskal(*groups.values())
        n, k = sum(map(len, groups.values())), len(groups)
        note = too_few(min(map(len, groups.values())), "units in a model")
        tests.append({**label, "n_models": k, "n_units": n, "H": res.statistic, "df": k - 1,
                      "p": np.nan if note else res.pvalue,
                      "epsilon_squared": res.statistic / (n - 1),
                      "eta_squared_h": (res.statistic - k + 1) / (n - k), "note": note})
        ph = conover_posthoc(groups)
        if note:
            ph[["p", "p_holm"]] = np.nan
            ph["note"] = note
        for column, value in reversed(list(label.items())):
            ph.insert(0, column, value)
        posthoc.append(ph)
    return pd.DataFrame(tests), (pd.concat(posthoc, ignore_index=True) if posthoc
                                 else pd.DataFrame())


BM_NORMAL_ABOVE = 50  # IMI: the normal approximation when the smaller group has more units


def brunner_munzel(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Brunner-Munzel test of two samples (IMI's rule: t distribution when the smaller group has
    at most 50 values, else the normal approximation) with P(a < b) + 0.5 P(a = b)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    distribution = "t" if min(len(a), len(b)) <= BM_NORMAL_ABOVE else "normal"
    res = stats.brunnermunzel(a, b, alternative="two-sided", distribution=distribution)
    ranks = stats.rankdata(np.r_[a, b])
    p_hat = (ranks[len(a):].mean() - (len(b) + 1) / 2) / len(a)
    return {"statistic": float(res.statistic), "p": float(res.pvalue), "distribution": distribution,
            "p_a_less_b": float(p_hat), "n_a": len(a), "n_b": len(b)}


def brunner_munzel_pairs(units: pd.DataFrame, strata: Sequence[str] = STRATA,
                         holm: bool = False) -> pd.DataFrame:
    """Brunner-Munzel for every pair of models within each condition, uncorrected as in IMI;
    `holm` adds Holm-adjusted p-values per condition (p_holm, not IMI's)."""
    keys = _strata(units, strata)
    out = []
    for key, frame in units.groupby(keys, observed=True, dropna=False) if keys else [((), units)]:
        key = key if isinstance(key, tuple) else (key,)
        groups = _model_groups(frame)
        rows = []
        for ma, mb in itertools.combinations(groups, 2):
            if len(groups[ma]) < 2 or len(groups[mb]) < 2:
                continue
            res = brunner_munzel(groups[ma], groups[mb])
            note = too_few(min(res["n_a"], res["n_b"]), "units in a model")
            rows.append({**dict(zip(keys, key)), "model_a": ma, "model_b": mb,
                         "score_a": groups[ma].mean(), "score_b": groups[mb].mean(), **res,
                         "note": note})
            if note:
                rows[-1]["p"] = np.nan
        if rows:
            fam = pd.DataFrame(rows)
            if holm:
                ok = fam["p"].notna()
                fam["p_holm"] = np.nan
                if ok.any():
                    fam.loc[ok, "p_holm"] = multipletests(fam.loc[ok, "p"], method="holm")[1]
            out.append(fam)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


def paired_conditions(units: pd.DataFrame, a: str = "natural", b: str = "synthetic",
                      n_resamples: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """Per unit score(a) - score(b) for units tested in both: Wilcoxon signed-rank and BCa CI,
    per model and over all models (per difficulty when there are several)."""
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
    by_difficulty = ("difficulty" in wide.columns
                     and wide["difficulty"].nunique(dropna=True) > 1)
    parts = wide.groupby("difficulty", observed=True) if by_difficulty else [(None, wide)]
    for difficulty, part in parts:
        label = {"difficulty": difficulty} if by_difficulty else {}
        rows += _paired_rows(part, a, b, label, n_resamples, rng)
    out = pd.DataFrame(rows)
    out.attrs.update(comparison=f"{a} - {b}", n_resamples=n_resamples, seed=seed)
    return out


def _paired_rows(wide: pd.DataFrame, a: str, b: str, label: dict, n_resamples: int,
                 rng: np.random.Generator) -> list[dict]:
    """Rows of `paired_conditions` for one difficulty: all models, then each model."""
    rows = []
    for model, frame in [("all", wide)] + list(wide.groupby("model", observed=True)):
        d = frame["diff"].to_numpy(float)
        if len(d) < 2:
            continue
        mean, low, high = bca_mean(d, n_resamples, 0.95, rng)
        w = stats.wilcoxon(d) if np.any(d != 0) else None
        note = too_few(len(d), "units")
        rows.append({**label, "model": model, "n_units": len(d), f"score_{a}": frame[a].mean(),
                     f"score_{b}": frame[b].mean(), "mean_diff": mean, "ci_low": low,
                     "ci_high": high, "wilcoxon_W": w.statistic if w else np.nan,
                     "p": np.nan if note else w.pvalue if w else 1.0, "note": note,
                     "share_units_a_better": float((d > 0).mean()),
                     "spearman_rho_units": stats.spearmanr(frame[a], frame[b]).statistic
                     if len(d) > 2 and np.ptp(frame[a]) > 0 and np.ptp(frame[b]) > 0
                     else np.nan})
    return rows


def layer_scores(units: pd.DataFrame, unit_table: pd.DataFrame | None,
                 strata: Sequence[str] = STRATA) -> pd.DataFrame:
    """Per model, condition and layer: the unweighted mean of its units' scores (IMI), the
    layer's relative depth and a t interval over its units (none for a single unit)."""
    if unit_table is None or "layer_position" not in unit_table.columns:
        return pd.DataFrame()
    pos = unit_table.drop_duplicates("unit_id").set_index("unit_id")["layer_position"]
    frame = units.assign(layer_position=units["unit_id"].map(pos)).dropna(
        subset=["layer_position"])
    if frame.empty:
        return pd.DataFrame()
    if "layer" not in frame.columns:  # a unit id is model/layer/channel
        frame = frame.assign(layer=frame["unit_id"].astype(str).str.rsplit("/", n=1).str[0])
    keys = _strata(frame, strata) + ["model", "layer"]
    g = frame.groupby(keys, observed=True, dropna=False)
    out = g.agg(layer_position=("layer_position", "first"), n_units=("score", "size"),
                score=("score", "mean"), sd=("score", "std")).reset_index()
    half = stats.t.ppf(0.975, np.maximum(out["n_units"] - 1, 1)) * out["sd"] / np.sqrt(
        out["n_units"])
    out["ci_low"] = (out["score"] - half).where(out["n_units"] > 1)
    out["ci_high"] = (out["score"] + half).where(out["n_units"] > 1)
    return out.sort_values(keys[:-1] + ["layer_position"]).reset_index(drop=True)


def depth_correlation(units: pd.DataFrame, unit_table: pd.DataFrame | None,
                      strata: Sequence[str] = STRATA, level: str = "layer") -> pd.DataFrame:
    """Spearman correlation of score with relative layer depth per model and condition: IMI
    averages units per layer first and correlates the layer means (`level="layer"`, n =
    layers); `level="unit"` correlates single units (n = units, not IMI's)."""
    if level not in ("layer", "unit"):
        raise ValueError(f"level must be 'layer' or 'unit', got {level!r}")
    if level == "layer":
        frame = layer_scores(units, unit_table, strata)
    else:
        frame = layer_scores(units.assign(layer=units["unit_id"]), unit_table, strata)
    if frame.empty:
        return pd.DataFrame()
    keys = _strata(frame, strata)
    rows = []
    for key, f in frame.groupby(keys + ["model"], observed=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        if len(f) < 3 or f["layer_position"].nunique() < 2 or f["score"].nunique() < 2:
            continue
        r = stats.spearmanr(f["layer_position"], f["score"])
        note = too_few(len(f), f"{level}s")
        rows.append({**dict(zip(keys + ["model"], key)), "level": level,
                     f"n_{level}s": len(f), "n_units": int(f["n_units"].sum()),
                     "spearman_rho": r.statistic, "p": np.nan if note else r.pvalue,
                     "note": note})
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
    scale_slopes: pd.DataFrame = field(default_factory=pd.DataFrame)
    # fitted logits (fixed + random effects) of the rows in the reference condition and easiest
    # difficulty: what the model logits and the TOST margin in logits refer to
    reference_eta: np.ndarray = field(default_factory=lambda: np.empty(0))
    engine: str = "vb"  # glmer (lme4) or vb (statsmodels, the fallback)
    seconds: float = np.nan

    def slope(self) -> pd.Series | None:
        """The row of the scale slope (logit per decade), if the model had one."""
        rows = self.fixed[self.fixed["term"] == "log10_scale"]
        return None if rows.empty else rows.iloc[0]


@dataclass
class _Design:
    """Response, fixed and random design of a binomial mixed GLM."""

    y: np.ndarray
    exog: np.ndarray
    names: list[str]
    exog_vc: sparse.csr_array
    ident: np.ndarray
    vcp_names: list[str]
    vc_names: list[str]


def _subsample(data: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """All trials of randomly ordered whole participants, up to `max_rows` rows (seeded)."""
    n_rows = len(data)
    if n_rows <= max_rows:
        return data.reset_index(drop=True), []
    # whole participants keep each participant's effect estimable and the random effects few
    ids = data["participant_id"].unique()
    order = np.random.default_rng(seed).permutation(len(ids))
    sizes = data.groupby("participant_id", observed=True).size().reindex(ids[order])
    keep = sizes.index[np.cumsum(sizes.to_numpy()) <= max_rows]
    data = data[data["participant_id"].isin(keep)].reset_index(drop=True)
    note = (f"fitted on all trials of {len(keep)} randomly chosen participants "
            f"({len(data)} of {n_rows} scored trials, seed {seed})")
    return data, [note]


DIFFICULTY_ORDER = DIFFICULTIES  # easiest first


def _easiest(data: pd.DataFrame) -> str | None:
    """The easiest query difficulty among `data`'s rows (None without a known one)."""
    present = set(data["difficulty"].dropna()) if "difficulty" in data.columns else set()
    return next((d for d in DIFFICULTY_ORDER if d in present), None)


def _treatment_columns(data: pd.DataFrame, column: str, reference: str
                       ) -> tuple[list[np.ndarray], list[str]]:
    """Treatment-coded indicators of `column` against `reference` (or its first level)."""
    if column not in data.columns:
        return [], []
    levels = sorted(data[column].dropna().unique())
    base = reference if reference in levels else (levels[0] if levels else None)
    others = [c for c in levels if c != base]
    return ([(data[column] == c).to_numpy(float) for c in others],
            [f"{column}[{c}]" for c in others])


FACTORS = ("condition", "difficulty")  # IMI's 2-AFC; a task type names its own (`factors`)


def with_query_distribution(factors: Sequence[str], data: pd.DataFrame) -> tuple[str, ...]:
    """The factors plus query_distribution and its interaction with condition, when the data
    hold queries from more than one distribution (shifted queries)."""
    column = "query_distribution"
    if column not in data.columns or data[column].nunique(dropna=True) < 2:
        return tuple(factors)
    extra = (column, f"condition:{column}") if "condition" in factors else (column,)
    return (*factors, *extra)


def _cell_columns(data: pd.DataFrame, reference: str, factors: Sequence[str] = FACTORS
                  ) -> tuple[list[np.ndarray], list[str]]:
    """Treatment-coded indicators of each factor: condition against `reference`, difficulty
    against the easiest difficulty present (easy queries unless the data have none),
    query_distribution against `in`, any other factor against its first level; `a:b` is the
    interaction, the products of a's and b's indicators."""
    columns: list[np.ndarray] = []
    names: list[str] = []
    coded: dict[str, tuple[list[np.ndarray], list[str]]] = {}

    def code(factor: str) -> tuple[list[np.ndarray], list[str]]:
        if factor not in coded:
            base = {"condition": reference, "difficulty": _easiest(data) or "",
                    "query_distribution": IN_DISTRIBUTION}.get(factor, "")
            coded[factor] = _treatment_columns(data, factor, base)
        return coded[factor]

    for factor in factors:
        if ":" in factor:
            (a_cols, a_names), (b_cols, b_names) = (code(f) for f in factor.split(":", 1))
            columns += [x * y for x in a_cols for y in b_cols]
            names += [f"{x}:{y}" for x in a_names for y in b_names]
        else:
            columns += code(factor)[0]
            names += code(factor)[1]
    return columns, names


def _factors_note(factors: Sequence[str], reference: str) -> str:
    """How the task type's factors enter the mixed model."""
    return (f"fixed effects of the task type's factors ({', '.join(factors)}), treatment-coded"
            + (f"; condition against {reference}" if "condition" in factors else ""))


def _design(data: pd.DataFrame, fixed: list[np.ndarray], names: list[str],
            factors: list[tuple[str, str]]) -> _Design:
    """Random intercepts for each (label, column) factor as a sparse indicator design."""
    blocks, ident, vc_names = [], [], []
    for i, (label, column) in enumerate(factors):
        codes, levels = pd.factorize(data[column])
        blocks.append(sparse.csr_array((np.ones(len(data)), (np.arange(len(data)), codes)),
                                       shape=(len(data), len(levels))))
        ident += [i] * len(levels)
        vc_names += [f"{label}:{lv}" for lv in levels]
    return _Design(y=data["correct"].to_numpy(float), exog=np.column_stack(fixed), names=names,
                   exog_vc=sparse.hstack(blocks, format="csr"),
                   ident=np.asarray(ident, dtype=int),
                   vcp_names=[label for label, _ in factors], vc_names=vc_names)


def _fit_vb(design: _Design, fit_method: str, seed: int) -> BayesMixedGLMResults:
    """Mean-field VB fit of statsmodels' BinomialBayesMixedGLM (seeded start, one BLAS thread)."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    glmm = BinomialBayesMixedGLM(design.y, design.exog, design.exog_vc, design.ident,
                                 vcp_p=1.0, fe_p=FE_PRIOR_SD, fep_names=design.names,
                                 vcp_names=design.vcp_names, vc_names=design.vc_names)
    with _single_thread():  # 2-3x faster on a busy machine, never slower (measured)
        return glmm.fit_vb(fit_method=fit_method, rng=np.random.default_rng(seed))


FE_PRIOR_SD = 2.0  # prior SD of each fixed effect (logit) in the Bayesian mixed GLM


def _joint_fixed_sd(design: _Design, fit: BayesMixedGLMResults) -> np.ndarray:
    """Posterior SDs of the fixed effects from the joint Gaussian approximation at the VB means.

    The fixed-effects block of the inverse joint precision of fixed and random effects given the
    variance components (Henderson's mixed-model equations with the logistic IRLS weights),
    through a sparse Schur complement. Mean-field VB keeps only the diagonal blocks, so it drops
    the correlation of between-participant effects (condition, difficulty) with the participant
    effects: its SDs were 2-3x too small (benchmarks/coverage_mixed_effects.py).
    """
    from scipy.sparse.linalg import splu
    from scipy.special import expit

    x, z = design.exog, design.exog_vc
    p = expit(x @ fit.fe_mean + z @ fit.vc_mean)
    w = p * (1 - p)
    a = x.T @ (x * w[:, None]) + np.eye(x.shape[1]) / FE_PRIOR_SD**2
    zw = sparse.csr_array(z.multiply(w[:, None]))
    b = np.asarray(zw.T @ x)
    d = (z.T @ zw) + sparse.diags_array(np.exp(-2 * fit.vcp_mean[design.ident]))
    schur = a - b.T @ splu(sparse.csc_matrix(d)).solve(b)
    return np.sqrt(np.diag(np.linalg.inv(schur)))


def model_logits(data: pd.DataFrame, reference: str = "natural", fit_method: str = "L-BFGS-B",
                 seed: int = 0, factors: Sequence[str] = FACTORS) -> pd.Series:
    """Each model's logit of P(correct) in the reference condition, from a mixed GLM with one
    fixed intercept per model, fixed condition effects and crossed random intercepts for
    participant and unit (VB posterior means)."""
    codes, levels = pd.factorize(data["model"])
    fixed = [(codes == i).astype(float) for i in range(len(levels))]
    cond, cond_names = _cell_columns(data, reference, factors)
    design = _design(data, fixed + cond, [f"model[{m}]" for m in levels] + cond_names,
                     [("participant", "participant_id"), ("unit", "unit_id")])
    fit = _fit_vb(design, fit_method, seed)
    return pd.Series(fit.fe_mean[:len(levels)], index=pd.Index(levels, name="model"))


def between_model_slope(logits: pd.Series, log10_scale: pd.Series,
                        confidence: float = 0.95) -> dict[str, float]:
    """Least-squares slope of model logits on log10 scale, one point per model, with a t interval
    on models - 2 df (the residual holds between-model deviations and estimation noise)."""
    x = log10_scale.reindex(logits.index).to_numpy(float)
    y = logits.to_numpy(float)
    df = len(y) - 2
    if df < 1 or np.ptp(x) == 0:
        return {"estimate": np.nan, "sd": np.nan, "df": float(df), "ci_low": np.nan,
                "ci_high": np.nan, "n_models": len(y), "residual_sd": np.nan}
    res = stats.linregress(x, y)
    half = stats.t.ppf(0.5 + confidence / 2, df) * res.stderr
    resid = y - res.intercept - res.slope * x
    return {"estimate": res.slope, "sd": res.stderr, "df": float(df),
            "ci_low": res.slope - half, "ci_high": res.slope + half, "n_models": len(y),
            "residual_sd": float(np.sqrt(resid @ resid / df))}


def _scale_column(data: pd.DataFrame, models: pd.DataFrame | None, scale: str | None
                  ) -> tuple[np.ndarray | None, str]:
    """log10 of the scale variable per row, or None with the reason."""
    if scale is None or models is None:
        return None, ""
    x = attach_model_metadata(data[["model"]], models, (scale,))[scale].to_numpy(float)
    if np.isfinite(x).all() and (x > 0).all() and np.unique(x).size > 1:
        return transform_scale(x, scale), ""
    return None, f"no scale term: {scale} missing or constant for some models"


SLOPE_METHOD = "between-model t"
VB_METHOD = "VB posterior (mean-field)"
JOINT_METHOD = "joint Gaussian at the VB means"
JOINT_INTERVAL_TEXT = (
    "Intervals of the fixed effects are estimate +- 1.96 SD, the SD from the joint Gaussian "
    "approximation of fixed and random effects at the VB means (the fixed-effects block of the "
    "inverse joint precision given the variance components); sd_vb is mean-field VB's own "
    "posterior SD, which ignores the correlation of between-participant effects (condition, "
    "difficulty) with the participant effects. The SDs of the variance components are "
    "mean-field VB's.")
SLOPE_INTERVAL_TEXT = (
    "Scale is a model-level predictor, so the log10_scale row holds the between-model slope: "
    "each model's logit in the reference condition (one fixed intercept per model) regressed "
    "on the scale variable (log10 for counts, top-1 in steps of 10 points) by least squares, "
    "one point per model, with a t interval on models - 2 df; its residual holds both the "
    "between-model deviations and the estimation noise.")
GLMER_INTERVAL_TEXT = (
    "Fixed effects: glmer's estimates with Wald intervals (estimate +- 1.96 SE, the SE from "
    "lme4's covariance of the fixed effects at the estimates: vcov(use.hessian = FALSE), "
    "since the finite-difference Hessian that glmer's default convergence check adds costs "
    "about as much as the fit; its SEs differ slightly, see docs/analysis.md). With several "
    "models each model has its own fixed "
    "intercept (model[...]: its logit in the reference condition); scale enters through the "
    "between-model slope. Variance components: the SD of each random intercept with a Wald "
    "interval on log(SD), its SE from the curvature of glmer's deviance in the SDs (the fixed "
    "effects held at their estimates); an SD at the boundary (near 0) gets no upper limit.")
ENGINES = ("auto", "glmer", "vb")


def mixed_model(responses: pd.DataFrame, models: pd.DataFrame | None = None,
                scale: str | None = "parameters", max_rows: int | None = None, seed: int = 0,
                model_effect: bool = True, reference: str = "natural",
                fit_method: str = "L-BFGS-B", margin: float = DEFAULT_MARGIN,
                slope_scales: Sequence[str] = SCALES, factors: Sequence[str] = FACTORS,
                engine: str = "auto", nagq: int = 1) -> MixedModelResult:
    """Logistic mixed model of correctness on every scored row (or a seeded subsample of whole
    participants, `max_rows`): lme4's glmer when R and lme4 are installed (`engine` auto or
    glmer; Laplace, `nagq` 1), else statsmodels' variational Bayes (`engine` vb, the named
    fallback). See `glmer_mixed_model` and `vb_mixed_model`."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    from analysis import glmm

    if engine == "glmer" or (engine == "auto" and glmm.available()):
        return glmer_mixed_model(responses, models, scale, max_rows, seed, model_effect,
                                 reference, margin, slope_scales, factors, nagq)
    notes = ([] if engine == "vb" else
             [f"lme4 not found, so the statsmodels fallback ran ({glmm.INSTALL_HINT} for glmer)"])
    result = vb_mixed_model(responses, models, scale, 8_000 if max_rows is None else max_rows,
                            seed, model_effect, reference, fit_method, margin, slope_scales,
                            factors)
    result.notes[:0] = notes
    return result


def glmer_mixed_model(responses: pd.DataFrame, models: pd.DataFrame | None = None,
                      scale: str | None = "parameters", max_rows: int | None = None,
                      seed: int = 0, model_effect: bool = True, reference: str = "natural",
                      margin: float = DEFAULT_MARGIN, slope_scales: Sequence[str] = SCALES,
                      factors: Sequence[str] = FACTORS, nagq: int = 1) -> MixedModelResult:
    """lme4's glmer: fixed `factors` (treatment-coded, condition against `reference`) and one
    intercept per model (the model's logit in the reference cell), random intercepts for
    participant, unit and unit:condition (crossed); the scale slope is the between-model slope
    of those logits (t on models - 2 df, with a TOST per scale variable)."""
    from analysis import glmm

    full = main_trials(responses)
    data, notes = _subsample(full, len(full) if max_rows is None else max_rows, seed)
    names_models = model_order(data["model"].astype(str).unique(), models)
    if model_effect and len(names_models) > 1:
        fixed_cols = [(data["model"].astype(str) == m).to_numpy(float) for m in names_models]
        names = [f"model[{m}]" for m in names_models]
    else:
        fixed_cols, names = [np.ones(len(data))], ["intercept"]
    cond, cond_names = _cell_columns(data, reference, factors)
    fixed_cols += cond
    names += cond_names
    notes.append(_factors_note(factors, reference))
    random = [("participant", data["participant_id"]), ("unit", data["unit_id"])]
    if data["condition"].nunique() > 1:
        random.append(("unit:condition", data["unit_id"].astype(str) + "|"
                       + data["condition"].astype(str)))
    fit = glmm.fit_glmer(data["correct"].to_numpy(int), np.column_stack(fixed_cols), names,
                         random, nagq=nagq)
    z = stats.norm.ppf(0.975)
    fixed = pd.DataFrame({"term": names, "estimate": fit.fixed["estimate"].to_numpy(float),
                          "sd": fit.fixed["se"].to_numpy(float), "df": np.inf,
                          "interval": "Wald (glmer)"})
    fixed["ci_low"] = fixed["estimate"] - z * fixed["sd"]
    fixed["ci_high"] = fixed["estimate"] + z * fixed["sd"]
    reference_eta = fit.eta[_reference_rows(data, reference)]
    slopes = pd.DataFrame()
    lx, why = _scale_column(data, models, scale)
    if lx is not None and names[0].startswith("model["):
        logits = pd.Series(fixed["estimate"].to_numpy()[:len(names_models)],
                           index=pd.Index(names_models, name="model"))
        slopes, slope_notes = between_model_slopes(logits, models, scale, slope_scales, margin,
                                                   reference_eta)
        notes += slope_notes
        used = slopes[slopes["used"]] if not slopes.empty else slopes
        if not used.empty:
            row = used.iloc[0]
            fixed = pd.concat([fixed, pd.DataFrame([{
                "term": "log10_scale", **{c: row[c] for c in ("estimate", "sd", "df",
                                                              "ci_low", "ci_high")},
                "interval": SLOPE_METHOD}])], ignore_index=True)
    elif why:
        notes.append(why)
    fixed["odds_ratio"] = np.exp(fixed["estimate"])
    variance = _glmer_variance(fit.variance, z)
    notes += [f"lme4: {w}" for w in fit.warnings]
    approximation = "Laplace" if nagq == 1 else f"nAGQ = {nagq}"
    method = (f"lme4 {fit.info.get('lme4', '?')} glmer ({approximation}, nloptwrap; "
              f"{fit.info.get('R', 'R')}), {float(fit.info.get('fit_s', 'nan')):.1f} s")
    return MixedModelResult(fixed=fixed, variance=variance, n_rows=len(full), n_used=len(data),
                            seed=seed, scale=scale if not slopes.empty else None, method=method,
                            notes=notes, scale_slopes=slopes, reference_eta=reference_eta,
                            engine="glmer", seconds=float(fit.info.get("total_s", "nan")))


def compare_fits(sub: MixedModelResult, full: MixedModelResult) -> pd.DataFrame:
    """A subsample's fit beside the fit on every row: estimates, interval widths and their
    ratio per fixed effect and variance component, the scale slope's TOST verdict, seconds."""
    def rows(result: MixedModelResult) -> pd.DataFrame:
        fixed = result.fixed.assign(kind="fixed effect")[["kind", "term", "estimate", "ci_low",
                                                          "ci_high"]]
        variance = result.variance.rename(columns={"component": "term", "sd": "estimate",
                                                   "sd_low": "ci_low", "sd_high": "ci_high"})
        frame = pd.concat([fixed, variance.assign(kind="SD")[fixed.columns]], ignore_index=True)
        return frame.assign(width=frame["ci_high"] - frame["ci_low"]).set_index(["kind", "term"])

    a, b = rows(sub), rows(full)
    out = (a[["estimate", "width"]].add_suffix("_subsample")
           .join(b[["estimate", "width"]].add_suffix("_all"), how="outer").reset_index())
    out["width_ratio"] = out["width_subsample"] / out["width_all"]
    verdicts = {}
    for label, result in (("subsample", sub), ("all rows", full)):
        used = (result.scale_slopes[result.scale_slopes["used"]]
                if "equivalent" in result.scale_slopes else pd.DataFrame())
        if not used.empty:
            verdicts[label] = (float(used.iloc[0]["p_tost"]), bool(used.iloc[0]["equivalent"]))
    out.attrs.update(rows=(sub.n_used, full.n_used), seconds=(sub.seconds, full.seconds),
                     tost=verdicts)
    return out


def _glmer_variance(variance: pd.DataFrame, z: float) -> pd.DataFrame:
    """SDs with Wald intervals on log(SD); an SD at the boundary gets [0, no upper limit]."""
    sd = variance["sd"].to_numpy(float)
    se = variance["se"].to_numpy(float)
    inner = (sd > 1e-4) & np.isfinite(se)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        spread = np.exp(z * se / sd)
        high = sd * spread
    return pd.DataFrame({"component": variance["component"], "sd": sd, "se": se,
                         "sd_low": np.where(inner, sd / spread, 0.0),
                         "sd_high": np.where(inner, high, np.nan),
                         "interval": np.where(inner, "Wald on log(SD)", "at the boundary")})


def vb_mixed_model(responses: pd.DataFrame, models: pd.DataFrame | None = None,
                   scale: str | None = "parameters", max_rows: int = 8_000, seed: int = 0,
                   model_effect: bool = True, reference: str = "natural",
                   fit_method: str = "L-BFGS-B", margin: float = DEFAULT_MARGIN,
                   slope_scales: Sequence[str] = SCALES, factors: Sequence[str] = FACTORS
                   ) -> MixedModelResult:
    """The fallback without R: logistic regression of correctness with fixed `factors` (the
    task type's; IMI: condition and difficulty, condition against `reference`) +
    log10(scale), random intercepts for participant and unit (crossed), and model; Bayesian
    mixed GLM fitted by variational Bayes.

    statsmodels' BinomialBayesMixedGLM.fit_vb handles thousands of crossed random effects in
    seconds. A unit's effect may differ between conditions (a unit:condition random intercept
    when there are several conditions). Intervals of fixed effects are estimate +- 1.96 SD
    with the SD of the joint Gaussian approximation at the VB means (`_joint_fixed_sd`,
    JOINT_INTERVAL_TEXT); mean-field VB's own SDs (column sd_vb) were 2-3x too small. The
    mean-field posterior drops the correlation between the scale slope and the model intercepts,
    so its slope interval is far too narrow (measured coverage 55%); the log10_scale row
    therefore holds the between-model slope (see `between_model_slope`, SLOPE_INTERVAL_TEXT):
    model logits from a second mixed GLM (one fixed intercept per model, same random
    participant and unit intercepts) regressed on log10 scale with a t interval on models - 2
    df (measured coverage 92.5%). Both are in `scale_slopes`, which also holds the
    between-model slope on every variable of `slope_scales` (one more fit serves all) with a
    TOST against `margin`, given in proportion correct per unit of the transformed scale and
    converted to logits by `margin_in_logits` (divided by the mean p(1 - p) of the fitted
    probabilities of the reference rows, the average slope of the logistic curve there). Several query difficulties get treatment-coded fixed effects
    against the easiest one present. Large data are fitted on the
    trials of a seeded random subset of participants, up to `max_rows` rows. The optimiser is
    L-BFGS-B: statsmodels' default BFGS keeps a dense inverse Hessian over every random effect.
    """
    full = main_trials(responses)
    data, notes = _subsample(full, max_rows, seed)
    fixed_cols, names = [np.ones(len(data))], ["intercept"]
    cond, cond_names = _cell_columns(data, reference, factors)
    fixed_cols += cond
    names += cond_names
    notes.append(_factors_note(factors, reference))
    lx, why = _scale_column(data, models, scale)
    if lx is not None:
        fixed_cols.append(lx - lx.mean())
        names.append("log10_scale")
        notes.append(f"log10({scale}) centred at {lx.mean():.3f}")
    elif why:
        notes.append(why)
    random = [("participant", "participant_id"), ("unit", "unit_id")]
    if data["condition"].nunique() > 1:
        # a unit's effect differs between conditions (its exemplars and its visualizations)
        data = data.assign(unit_condition=data["unit_id"].astype(str) + "|"
                           + data["condition"].astype(str))
        random.append(("unit:condition", "unit_condition"))
    if model_effect and data["model"].nunique() > 1:
        random.append(("model", "model"))
    started = time.perf_counter()
    design = _design(data, fixed_cols, names, random)
    fit = _fit_vb(design, fit_method, seed)
    eta = design.exog @ fit.fe_mean + design.exog_vc @ fit.vc_mean
    reference_eta = eta[_reference_rows(data, reference)]
    z = stats.norm.ppf(0.975)
    fixed = pd.DataFrame({"term": names, "estimate": fit.fe_mean,
                          "sd": _joint_fixed_sd(design, fit), "df": np.inf,
                          "interval": JOINT_METHOD, "sd_vb": fit.fe_sd})
    fixed["ci_low"] = fixed["estimate"] - z * fixed["sd"]
    fixed["ci_high"] = fixed["estimate"] + z * fixed["sd"]
    slopes = pd.DataFrame()
    if lx is not None:
        slopes, slope_notes = _scale_slopes(data, models, fixed, scale, reference, fit_method,
                                            seed, margin, slope_scales, reference_eta, factors)
        notes += slope_notes
        best = slopes[(slopes["scale"] == scale)].iloc[-1]
        columns = ["estimate", "sd", "df", "interval", "ci_low", "ci_high"]
        fixed.loc[fixed["term"] == "log10_scale", columns] = [best[c] for c in columns]
    fixed["odds_ratio"] = np.exp(fixed["estimate"])
    variance = pd.DataFrame({"component": [label for label, _ in random],
                             "sd": np.exp(fit.vcp_mean),
                             "sd_low": np.exp(fit.vcp_mean - z * fit.vcp_sd),
                             "sd_high": np.exp(fit.vcp_mean + z * fit.vcp_sd)})
    return MixedModelResult(fixed=fixed, variance=variance, n_rows=len(full), n_used=len(data),
                            seed=seed, scale=scale if lx is not None else None,
                            method=_method_text(fit_method, slopes), notes=notes,
                            scale_slopes=slopes, reference_eta=reference_eta, engine="vb",
                            seconds=time.perf_counter() - started)


def _method_text(fit_method: str, slopes: pd.DataFrame) -> str:
    """The fit and, when there is one, the interval of the scale slope."""
    text = f"BinomialBayesMixedGLM.fit_vb (statsmodels, mean-field VB, {fit_method})"
    if slopes.empty:
        return text
    used = slopes[slopes["used"]].iloc[0]
    return text + f"; log10_scale interval: {used['interval']} (df {used['df']:g})"


def _reference_rows(data: pd.DataFrame, reference: str) -> np.ndarray:
    """Rows in the reference condition, the easiest difficulty and in-distribution queries
    (all rows if there are none)."""
    mask = np.ones(len(data), dtype=bool)
    if "query_distribution" in data.columns and (data["query_distribution"] == IN_DISTRIBUTION).any():
        mask &= (data["query_distribution"] == IN_DISTRIBUTION).to_numpy()
    if reference in set(data["condition"].dropna()):
        mask &= (data["condition"] == reference).to_numpy()
    easiest = _easiest(data[mask])
    if easiest is not None:
        mask &= (data["difficulty"] == easiest).to_numpy()
    return mask if mask.any() else np.ones(len(data), dtype=bool)


def margin_in_logits(margin: float, reference_eta: np.ndarray) -> tuple[float, float]:
    """(margin in logits, mean p(1 - p)): a shift of the logits by d changes the mean
    proportion correct of the reference rows by about d * mean(p(1 - p)), p their fitted
    probabilities given the random effects."""
    from scipy.special import expit

    p = expit(reference_eta)
    density = float(np.mean(p * (1 - p))) if len(p) else 0.25
    return margin / max(density, 1e-6), density


def _scale_slopes(data: pd.DataFrame, models: pd.DataFrame, fixed: pd.DataFrame, scale: str,
                  reference: str, fit_method: str, seed: int, margin: float,
                  scales: Sequence[str], reference_eta: np.ndarray,
                  factors: Sequence[str] = FACTORS) -> tuple[pd.DataFrame, list[str]]:
    """The VB fit's slope of `scale` (mean-field VB and joint Gaussian SDs) and the
    between-model slope on each of `scales` (when >= 3 models, from a second fit with one
    intercept per model) with a TOST; the row with used=True is the log10_scale row."""
    main = fixed.set_index("term").loc["log10_scale"]
    z = stats.norm.ppf(0.975)
    unit = TRANSFORMS[scale][1] if scale in TRANSFORMS else "per 10x"
    rows = [{"scale": scale, "unit": unit, "interval": method, "estimate": main["estimate"],
             "sd": sd, "df": np.inf, "ci_low": main["estimate"] - z * sd,
             "ci_high": main["estimate"] + z * sd, "used": False}
            for method, sd in ((VB_METHOD, main["sd_vb"]), (JOINT_METHOD, main["sd"]))]
    if data["model"].nunique() < 3:
        rows[1]["used"] = True
        note = ("log10_scale interval: joint Gaussian of the main fit (fewer than 3 models, no "
                "between-model slope; too narrow when models vary beyond the trend)")
        return pd.DataFrame(rows), [note]
    logits = model_logits(data, reference, fit_method, seed, factors)
    between, notes = between_model_slopes(logits, models, scale, scales, margin, reference_eta)
    out = pd.concat([pd.DataFrame(rows), between], ignore_index=True)
    out["used"] = out["used"].fillna(False).astype(bool)
    if not out["used"].any():
        out.loc[1, "used"] = True
        return out, notes
    row = out[out["used"]].iloc[0]
    width_vb = rows[0]["ci_high"] - rows[0]["ci_low"]
    comparison = "narrower" if width_vb < row["ci_high"] - row["ci_low"] else "not narrower"
    notes.insert(1, f"the mean-field VB interval [{rows[0]['ci_low']:.3f}, "
                    f"{rows[0]['ci_high']:.3f}] is {comparison} here")
    return out, notes


def between_model_slopes(logits: pd.Series, models: pd.DataFrame, scale: str,
                         scales: Sequence[str], margin: float, reference_eta: np.ndarray
                         ) -> tuple[pd.DataFrame, list[str]]:
    """The between-model slope of the model logits on `scale` and each of `scales` (>= 3
    models with distinct values), each with a TOST against `margin` (proportion correct,
    converted to logits at the reference rows); used=True marks `scale`'s row."""
    margin_logit, density = margin_in_logits(margin, reference_eta)
    meta = attach_model_metadata(pd.DataFrame({"model": logits.index}), models,
                                 tuple(dict.fromkeys((scale, *scales)))).set_index("model")
    rows, notes = [], []
    for name in dict.fromkeys((scale, *scales)):
        if name not in meta.columns:
            continue
        x = pd.Series(transform_scale(meta[name].to_numpy(float), name), index=meta.index)
        x = x[np.isfinite(x)]
        if len(x) < 3 or np.ptp(x) == 0:
            continue
        slope = between_model_slope(logits.reindex(x.index), x)
        t90 = stats.t.ppf(0.95, slope["df"]) * slope["sd"]
        rows.append({"scale": name, "unit": TRANSFORMS.get(name, ("", "per 10x"))[1],
                     "interval": SLOPE_METHOD, **slope,
                     "ci90_low": slope["estimate"] - t90, "ci90_high": slope["estimate"] + t90,
                     "n_distinct": int(x.nunique()), "margin_logit": margin_logit,
                     **tost_slope(slope["estimate"], slope["sd"], slope["df"], margin_logit),
                     "used": name == scale})
        if x.nunique() < 4:
            notes.append(f"{name}: only {x.nunique()} distinct values among {len(x)} models, so "
                         f"its slope contrasts {x.nunique()} groups of models")
    out = pd.DataFrame(rows)
    if out.empty:
        return out, notes
    used = out[out["used"]]
    if not used.empty:
        row = used.iloc[0]
        notes.insert(0, f"log10_scale: between-model slope of {int(row['n_models'])} model "
                        f"logits on {scale}, t interval with {row['df']:.0f} df")
    notes.append(f"TOST margins: +-{margin} proportion correct per unit of each scale variable, "
                 f"+-{margin_logit:.3f} logit (divided by the mean p(1 - p) = {density:.3f} of "
                 f"the fitted probabilities in the reference condition)")
    return out, notes


__all__ = [
    "MixedModelResult",
    "between_model_slope",
    "between_model_slopes",
    "brunner_munzel",
    "brunner_munzel_pairs",
    "conover_posthoc",
    "depth_correlation",
    "glmer_mixed_model",
    "kruskal_models",
    "layer_scores",
    "mixed_model",
    "model_logits",
    "paired_conditions",
    "vb_mixed_model",
]
