"""Figures (matplotlib, Agg backend), each saved as PNG and SVG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.load import attach_model_metadata, model_order
from analysis.scaling import TRANSFORMS, transform_scale

COLORS = {"natural": "#1f77b4", "synthetic": "#ff7f0e", "mixed": "#2ca02c", "none": "#7f7f7f",
          "blurred": "#9467bd"}
OTHER_COLORS = ("#8c564b", "#e377c2", "#bcbd22", "#17becf", "#d62728")  # other types' conditions



def _cells(frame: pd.DataFrame) -> list[tuple[str, str, pd.DataFrame]]:
    """(label, colour key, rows) per condition, and per difficulty when there are several."""
    keys = ["condition"] + (["difficulty"] if "difficulty" in frame.columns
                            and frame["difficulty"].nunique(dropna=True) > 1 else [])
    out = []
    for key, f in frame.groupby(keys, observed=True, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        out.append((" / ".join(map(str, key)), str(key[0]), f))
    return out


def _markers(n: int) -> list[str]:
    return (["o", "s", "^", "D", "v"] * (n // 5 + 1))[:n]


def _interval(ax: plt.Axes, x: np.ndarray, y: np.ndarray, low: pd.Series, high: pd.Series,
              color: str, label: str, marker: str = "o", line: bool = False) -> None:
    """Estimate markers with the interval as drawn lines from low to high (a BCa interval can
    exclude its estimate; error bars cannot show that)."""
    low, high = low.to_numpy(float), high.to_numpy(float)
    ax.vlines(x, low, high, color=color, lw=1.2)
    ax.plot(x, y, marker=marker, ls="-" if line else "none", color=color, label=label)


def save(fig: plt.Figure, folder: str | Path, name: str) -> list[Path]:
    """Write `fig` as name.png and name.svg into `folder`; close it; return the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(paths[0], dpi=120, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _color(condition: str) -> str:
    """The condition's colour; a condition of another task type gets a stable one of the rest."""
    name = str(condition)
    if name in COLORS:
        return COLORS[name]
    return OTHER_COLORS[sum(name.encode()) % len(OTHER_COLORS)]


def plot_model_scores(model_scores: pd.DataFrame, title: str = "", chance: float = 0.5,
                      order: list[str] | None = None) -> plt.Figure:
    """Per-model score with its interval, one marker colour per condition (IMI's main figure),
    models in `order` (IMI's, by scale)."""
    models = order or model_order(model_scores["model"].unique())
    cells = _cells(model_scores)
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(models) + 2), 4))
    width = 0.8 / max(len(cells), 1)
    for i, ((label, c, f), marker) in enumerate(zip(cells, _markers(len(cells)))):
        f = f.set_index("model").reindex(models)
        x = np.arange(len(models)) + (i - (len(cells) - 1) / 2) * width
        _interval(ax, x, f["score"].to_numpy(float), f["ci_low"], f["ci_high"], _color(c),
                  label, marker)
    ax.axhline(chance, color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xticks(np.arange(len(models)), models, rotation=35, ha="right")
    ax.set_ylabel("proportion correct")
    ax.set_ylim(0.45, 1.0)
    ax.set_title(title or "Score per model (mean over units, 95% CI)")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_psychometric(fits: pd.DataFrame) -> plt.Figure:
    """Proportion correct on the polysemantic calibration units against the mixing knob, one
    colour per explanation type: the measured points and the fitted curve."""
    from analysis.calibration import psychometric_p

    fig, ax = plt.subplots(figsize=(5, 4))
    grid = np.linspace(0, 1, 101)
    for _, row in fits.iterrows():  # column names hold dots (p_correct_m0.25)
        measured = {float(k.removeprefix("p_correct_m")): v for k, v in row.items()
                    if k.startswith("p_correct_m")}
        color = _color(row["condition"])
        ax.plot(list(measured), list(measured.values()), "o", color=color)
        if np.isnan(row["m50"]):  # flat: no curve beats one constant accuracy
            ax.plot([], [], "o", color=color, label=f"{row['condition']} (not resolved)")
            continue
        ax.plot(grid, psychometric_p(grid, row["m50"], row["width"], row["lapse"]), "-",
                color=color, label=f"{row['condition']} (m50 {row['m50']:.2f})")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xlabel("mixing knob m of max(A, m x B)")
    ax.set_ylabel("proportion correct")
    ax.set_ylim(0.4, 1.0)
    ax.set_title("Calibration units: resolution of each explanation type")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_shifted(model_gaps: pd.DataFrame) -> plt.Figure:
    """Per model, the drop in proportion correct from in-distribution to shifted queries (mean
    over units with its interval), one marker per condition and shifted distribution."""
    models = list(dict.fromkeys(model_gaps["model"]))
    cells = list(model_gaps.groupby(["condition", "difficulty", "query_distribution"],
                                    sort=True))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(models) + 2), 4))
    width = 0.8 / max(len(cells), 1)
    for i, (((condition, difficulty, label), f), marker) in enumerate(
            zip(cells, _markers(len(cells)))):
        f = f.set_index("model").reindex(models)
        x = np.arange(len(models)) + (i - (len(cells) - 1) / 2) * width
        name = f"{condition} / {label}" + (f" / {difficulty}"
                                           if model_gaps["difficulty"].nunique() > 1 else "")
        _interval(ax, x, f["gap"].to_numpy(float), f["gap_low"], f["gap_high"],
                  _color(condition), name, marker)
    ax.axhline(0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(models)), models, rotation=35, ha="right")
    ax.set_ylabel("in-distribution minus shifted\n(proportion correct)")
    ax.set_title("Score lost with shifted queries (mean over units, 95% CI)")
    ax.legend(frameon=False, fontsize=8)
    return fig


def plot_paired(units: pd.DataFrame, a: str = "natural", b: str = "synthetic") -> plt.Figure:
    """Per unit: score with condition `a` against score with condition `b`."""
    index = [k for k in ("model", "unit_id", "difficulty") if k in units.columns]
    wide = units[units["condition"].isin([a, b])].pivot_table(
        index=index, columns="condition", values="score", observed=True).dropna()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if a in wide.columns and b in wide.columns:
        rng = np.random.default_rng(0)
        jitter = rng.uniform(-0.006, 0.006, (len(wide), 2))
        for model, f in wide.groupby(level="model"):
            idx = wide.index.get_indexer(f.index)
            ax.scatter(f[b] + jitter[idx, 0], f[a] + jitter[idx, 1], s=10, alpha=0.6,
                       label=model)
        ax.legend(frameon=False, fontsize=6, ncol=2)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set_xlabel(f"unit score, {b}")
    ax.set_ylabel(f"unit score, {a}")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{a} vs {b} per unit")
    return fig


def plot_machine_vs_human(units: pd.DataFrame) -> plt.Figure:
    """Per model: each unit's machine score against its human score, one colour per observer."""
    models = sorted(units["model"].astype(str).unique())
    columns = min(3, len(models))
    rows = -(-len(models) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False,
                             sharex=True, sharey=True)
    observers = sorted(units["observer"].astype(str).unique())
    for ax, model in zip(axes.flat, models):
        part = units[units["model"].astype(str) == model]
        for i, observer in enumerate(observers):
            mine = part[part["observer"].astype(str) == observer]
            ax.scatter(mine["human_score"], mine["machine_score"], s=10, alpha=0.6,
                       color=OTHER_COLORS[i % len(OTHER_COLORS)], label=observer)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set_title(model, fontsize=9)
    for ax in axes.flat[len(models):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("human unit score")
    for ax in axes[:, 0]:
        ax.set_ylabel("machine unit score")
    axes.flat[0].legend(frameon=False, fontsize=6)
    fig.tight_layout()
    return fig


def plot_scale(model_scores: pd.DataFrame, models: pd.DataFrame,
               scales: tuple[str, ...] = ("parameters", "train_images", "top1"),
               chance: float = 0.5) -> plt.Figure:
    """Model score against each scale variable (log axis for counts), with the least-squares
    line of each condition (the slope of `scaling_slopes`)."""
    frame = attach_model_metadata(model_scores, models, scales)
    fig, axes = plt.subplots(1, len(scales), figsize=(4 * len(scales), 3.6), sharey=True)
    axes = np.atleast_1d(axes)
    labelled = []
    for ax, scale in zip(axes, scales):
        cells = _cells(frame)
        for i, ((label, c, f), marker) in enumerate(zip(cells, _markers(len(cells)))):
            f = f.dropna(subset=[scale])
            _interval(ax, f[scale].to_numpy(float), f["score"].to_numpy(float), f["ci_low"],
                      f["ci_high"], _color(c), label, marker)
            if i == 0:
                labelled.append((ax, f[scale].to_numpy(float), f["score"].to_numpy(float),
                                 f["model"].astype(str).tolist()))
            _trend_line(ax, f[scale].to_numpy(float), f["score"].to_numpy(float), scale,
                        _color(c), ("--", ":", "-.", (0, (5, 1)))[i % 4])
        if TRANSFORMS.get(scale, ("log10",))[0] == "log10":
            ax.set_xscale("log")
        ax.set_xlabel(scale.replace("_", " "))
        ax.axhline(chance, color="grey", lw=0.8, ls="--")
    axes[0].set_ylabel("proportion correct")
    axes[0].legend(frameon=False, fontsize=8)
    fig.suptitle("Score against model scale (bars: BCa 95% CI; lines: least-squares fits)")
    fig.tight_layout()
    for ax, xs, ys, names in labelled:
        _label_points(ax, xs, ys, names)
    return fig


OFFSETS = [(4, 3), (4, -9), (-4, 3), (-4, -9), (4, 12), (4, -18), (-4, 12), (-4, -18),
           (10, 20), (10, -26), (-10, 20), (-10, -26)]  # points, tried in this order


def _label_points(ax: plt.Axes, xs: np.ndarray, ys: np.ndarray, names: list[str]) -> None:
    """Name each point at the first offset whose text overlaps no label placed before it (the
    last offset tried when none is free)."""
    renderer = ax.figure.canvas.get_renderer()
    placed = []
    for x, y, name in sorted(zip(xs, ys, names), key=lambda v: (v[0], v[1])):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        for dx, dy in OFFSETS:
            text = ax.annotate(name, (x, y), fontsize=6, xytext=(dx, dy),
                               textcoords="offset points", color="#555",
                               ha="left" if dx > 0 else "right")
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            if not any(box.overlaps(other) for other in placed) or (dx, dy) == OFFSETS[-1]:
                placed.append(box)
                break
            text.remove()


def _trend_line(ax: plt.Axes, x: np.ndarray, y: np.ndarray, scale: str, color: str,
                style: str | tuple = "--") -> None:
    """The least-squares line of scaling_slopes (score on transformed scale), dashed."""
    t = transform_scale(x, scale)
    ok = np.isfinite(t) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(t[ok]) == 0:
        return
    slope, intercept = np.polyfit(t[ok], y[ok], 1)
    xs = np.linspace(x[ok].min(), x[ok].max(), 50)
    ax.plot(xs, intercept + slope * transform_scale(xs, scale), ls=style, lw=1, color=color)


def plot_confidence(by_confidence: pd.DataFrame, chance: float = 0.5) -> plt.Figure:
    """Accuracy per confidence level over all models, one line per condition."""
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    if "model" in by_confidence.columns:
        by_confidence = by_confidence[by_confidence["model"] == "all"]
    parts = (_cells(by_confidence) if "condition" in by_confidence.columns
             else [("all", "all", by_confidence)])
    for (label, c, f), marker in zip(parts, _markers(len(parts))):
        f = f.sort_values("confidence")
        _interval(ax, f["confidence"].to_numpy(float), f["accuracy"].to_numpy(float),
                  f["ci_low"], f["ci_high"], _color(c), label, marker, line=True)
    ax.set_xlabel("confidence")
    ax.set_ylabel("mean of unit accuracies")
    ax.set_xticks(sorted(by_confidence["confidence"].dropna().astype(int).unique()))
    ax.axhline(chance, color="grey", lw=0.8, ls="--")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Accuracy by confidence (BCa 95% CI over units)")
    return fig


def plot_depth(units: pd.DataFrame, layers: pd.DataFrame,
               unit_table: pd.DataFrame | None) -> plt.Figure | None:
    """Unit scores (dots) and layer means with their t intervals against relative layer depth
    (None when the units table has no depths)."""
    if layers is None or layers.empty or unit_table is None:
        return None
    pos = unit_table.drop_duplicates("unit_id").set_index("unit_id")["layer_position"]
    frame = units.assign(depth=units["unit_id"].map(pos)).dropna(subset=["depth"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    by_cell = {label: f for label, _, f in _cells(layers)}
    for (label, c, f), marker in zip(_cells(frame), _markers(len(by_cell))):
        ax.scatter(f["depth"], f["score"], s=6, alpha=0.25, color=_color(c), marker=marker)
        layer = by_cell.get(label)
        if layer is not None:
            _interval(ax, layer["layer_position"].to_numpy(float), layer["score"].to_numpy(float),
                      layer["ci_low"], layer["ci_high"], _color(c), f"{label} (layer means)",
                      marker)
    ax.set_xlabel("relative layer depth")
    ax.set_ylabel("proportion correct")
    ax.legend(frameon=False, fontsize=8)
    ax.set_title("Score by layer depth (layer means, t 95% CI over units)")
    return fig


def plot_power(power: pd.DataFrame) -> plt.Figure:
    """Simulated power against units per model, one line per responses-per-unit."""
    fig, ax = plt.subplots(figsize=(4.5, 3.6))
    for r, f in power.groupby("responses_per_unit"):
        ax.plot(f["n_units"], f["power"], marker="o", label=f"{r} responses/unit")
    ax.axhline(0.8, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("units per model")
    ax.set_ylabel("power")
    ax.set_ylim(0, 1)
    diff = power["difference"].iloc[0] if len(power) else np.nan
    ax.set_title(f"Power to detect a difference of {diff:.2f}")
    ax.legend(frameon=False, fontsize=8)
    return fig


__all__ = [
    "plot_confidence",
    "plot_depth",
    "plot_model_scores",
    "plot_paired",
    "plot_power",
    "plot_scale",
    "save",
]


def plot_accuracy_by_level(accuracy: pd.DataFrame, order: list[str], chance: float,
                           title: str = "") -> plt.Figure:
    """Accuracy over the distortion's levels: each person a thin grey line, the people pooled
    in black and each machine in colour, the pooled and machine lines with their 95%
    intervals."""
    from statsmodels.stats.proportion import proportion_confint

    fig, ax = plt.subplots(figsize=(7, 4))
    x_of = {level: i for i, level in enumerate(order)}

    def xs(rows: pd.DataFrame) -> np.ndarray:
        return rows["condition"].map(x_of).to_numpy(float)

    people = accuracy[accuracy["kind"] == "human"]
    for _, rows in people.groupby("observer", sort=False):
        rows = rows.sort_values("condition", key=lambda s: s.map(x_of))
        ax.plot(xs(rows), rows["accuracy"], color="#7f7f7f", lw=0.8, alpha=0.5)
    if not people.empty:
        pooled = people.groupby("condition")[["n", "n_correct"]].sum().reset_index()
        pooled = pooled.sort_values("condition", key=lambda s: s.map(x_of))
        low, high = proportion_confint(pooled["n_correct"], pooled["n"], method="wilson")
        _interval(ax, xs(pooled), (pooled["n_correct"] / pooled["n"]).to_numpy(float),
                  pd.Series(np.asarray(low)), pd.Series(np.asarray(high)), "black",
                  f"people ({people['observer'].nunique()}, pooled)", line=True)
    machines = accuracy[accuracy["kind"] != "human"]
    for k, (observer, rows) in enumerate(machines.groupby("observer", sort=False)):
        rows = rows.sort_values("condition", key=lambda s: s.map(x_of))
        _interval(ax, xs(rows), rows["accuracy"].to_numpy(float), rows["ci_low"],
                  rows["ci_high"], OTHER_COLORS[k % len(OTHER_COLORS)], str(observer),
                  marker="s", line=True)
    ax.axhline(chance, color="grey", ls="--", lw=1)
    ax.set_xticks(range(len(order)), order, rotation=45 if len(order) > 8 else 0)
    ax.set(xlabel="condition (distortion level)", ylabel="accuracy", ylim=(0, 1.02),
           title=title)
    ax.legend(fontsize=7, loc="best")
    return fig


def plot_error_consistency_matrix(pairs: pd.DataFrame, observers: list[str],
                                  title: str = "") -> plt.Figure:
    """Error consistency (kappa, mean over conditions) of every pair of observers."""
    mean = pairs.groupby(["observer_a", "observer_b"])["error_consistency"].mean()
    index = {o: i for i, o in enumerate(observers)}
    grid = np.full((len(observers), len(observers)), np.nan)
    np.fill_diagonal(grid, 1.0)
    for (a, b), value in mean.items():
        grid[index[a], index[b]] = grid[index[b], index[a]] = value
    size = 2 + 0.35 * len(observers)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(observers)), observers, rotation=90, fontsize=7)
    ax.set_yticks(range(len(observers)), observers, fontsize=7)
    if len(observers) <= 12:
        for i, j in zip(*np.where(np.isfinite(grid)), strict=True):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="error consistency (kappa)")
    ax.set_title(title)
    return fig
