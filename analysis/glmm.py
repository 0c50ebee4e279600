"""Binomial mixed models fitted by lme4's glmer (R, through Rscript): the field's engine."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.load import DataError

SCRIPT = "glmer.R"  # the optimiser and its tolerances are set there
INSTALL_HINT = ("install R and lme4 (Debian: apt-get install r-base-core r-cran-lme4; `make` "
                "does it)")


@dataclass
class GlmerFit:
    """What glmer returned: fixed effects with their SEs, the random intercepts' SDs with the
    SEs of the deviance's curvature, the linear predictor per row and the run's facts."""

    fixed: pd.DataFrame  # term, estimate, se
    variance: pd.DataFrame  # component, sd, se
    eta: np.ndarray
    info: dict[str, str] = field(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        """lme4's convergence messages and warnings, if any."""
        text = self.info.get("warnings", "")
        return [w.strip() for w in str(text).split("|") if w.strip() and w.strip() != "nan"]


def rscript() -> str | None:
    """The Rscript executable, or None."""
    return shutil.which("Rscript")


@cache
def lme4_version() -> str | None:
    """lme4's version when R and lme4 are installed, else None."""
    executable = rscript()
    if executable is None:
        return None
    done = subprocess.run([executable, "-e", "cat(as.character(packageVersion('lme4')))"],
                          capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def available() -> bool:
    """Whether glmer can run here (Rscript and lme4 found)."""
    return lme4_version() is not None


def fit_glmer(y: np.ndarray, fixed: np.ndarray, fixed_names: Sequence[str],
              groups: Sequence[tuple[str, np.ndarray]], nagq: int = 1,
              timeout_s: float = 3600) -> GlmerFit:
    """glmer(y ~ 0 + fixed + (1 | g) for each group, binomial) with the Laplace approximation
    (`nagq` 1) or `nagq` 0; optimiser nloptwrap."""
    if not available():
        raise DataError(f"the mixed model needs lme4: {INSTALL_HINT}")
    fixed = np.asarray(fixed, dtype=float).reshape(len(y), -1)
    f_cols = [f"f{i}" for i in range(fixed.shape[1])]
    g_cols = [f"g{i}" for i in range(len(groups))]
    data = pd.DataFrame({"y": np.asarray(y, dtype=int), **dict(zip(f_cols, fixed.T)),
                         **{c: np.asarray(g[1]).astype(str) for c, g in zip(g_cols, groups)}})
    options = pd.DataFrame({"key": ["fixed", "groups", "nagq"],
                            "value": [",".join(f_cols), ",".join(g_cols), str(nagq)]})
    script = resources.files("analysis").joinpath(SCRIPT)
    with tempfile.TemporaryDirectory(prefix="interpsy-glmer-") as tmp, \
            resources.as_file(script) as script_path:
        folder = Path(tmp)
        data.to_csv(folder / "data.csv", index=False, float_format="%.17g")
        options.to_csv(folder / "options.csv", index=False)
        done = subprocess.run([rscript(), "--vanilla", str(script_path), str(folder)],
                              capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["(no message)"])[-3:]
            raise DataError("lme4's glmer failed: " + " ".join(last))
        estimates = pd.read_csv(folder / "fixed.csv")
        variance = pd.read_csv(folder / "variance.csv")
        eta = pd.read_csv(folder / "eta.csv")["eta"].to_numpy(float)
        info = dict(pd.read_csv(folder / "info.csv", keep_default_na=False)
                    .astype(str).itertuples(index=False, name=None))
    names = dict(zip(f_cols, fixed_names))
    estimates["term"] = estimates["term"].map(names)
    labels = dict(zip(g_cols, (label for label, _ in groups)))
    variance = (variance.assign(component=variance["group"].map(labels))
                .set_index("group").loc[g_cols].reset_index(drop=True))  # the order given
    return GlmerFit(fixed=estimates, variance=variance[["component", "sd", "se"]], eta=eta, info=info)


__all__ = ["GlmerFit", "available", "fit_glmer", "lme4_version", "rscript"]
