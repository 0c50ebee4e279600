"""`interpsy analyze`: writes the report; bad input is one line and exit code 2."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_analyze_writes_report_tables_and_figures(small_folder, tmp_path, capsys):
    out = tmp_path / "report"
    rc = main(["analyze", str(small_folder), "--out", str(out), "--bootstrap", "300",
               "--seed", "7"])
    assert rc == 0
    html = (out / "report.html").read_text()
    for heading in ("Exclusions", "Scores per model and condition", "Two-way bootstrap",
                    "Mixed-effects logistic regression", "Scaling trends", "Power analysis",
                    "Conditions compared", "natural vs synthetic", "Kruskal-Wallis", "Brunner-Munzel",
                    "Accuracy by confidence", "Layer depth"):
        assert heading in html, heading
    images = re.findall(r"src='(figures/[^']+\.png)'", html)
    assert len(images) == 7
    for image in images:
        assert (out / image).stat().st_size > 1000
        assert (out / image).with_suffix(".svg").exists()
    summary = pd.read_csv(out / "tables" / "exclusion_summary.csv")
    assert "catch_trials" in set(summary["rule"])
    ms = pd.read_csv(out / "tables" / "model_scores.csv")
    assert len(ms) == 18 and (ms["ci_low"] < ms["score"]).all()
    assert '"seed": 7' in (out / "settings.json").read_text()
    assert "participants kept" in capsys.readouterr().out
    _reads_as_an_imi_author_would(html, ms)


def _reads_as_an_imi_author_would(html: str, model_scores: pd.DataFrame) -> None:
    """Every table under its own heading, text left-aligned, numbers right-aligned, IMI's model
    order, the excluded participants after the scores, each method named."""
    tables = [m.start() for m in re.finditer(r"<table class='t'>", html)]
    assert tables and all(html.rfind("</h3>", 0, start) > html.rfind("</table>", 0, start)
                          for start in tables), "a table without its own heading"
    assert "<th class='txt'>model</th>" in html and "<td class='num'>" in html
    imi = ["googlenet", "densenet201", "resnet50", "resnet50_l2_eps3", "clip_resnet50",
           "wide_resnet50_2", "vit_b32", "clip_vit_b32", "convnext_b"]
    assert list(dict.fromkeys(model_scores["model"])) == imi
    scores = html.index("id='scores'")
    assert html.index("Excluded participants and why") > scores
    for method in ("lme4", "glmer", "normal approximation", "epsilon_squared = H / (n",
                   "mean of unit accuracies", "units of each layer averaged first",
                   "least-squares fits"):
        assert method in html, method


def test_a_subsample_is_compared_with_every_row_in_the_reports_own_numbers(small_folder,
                                                                           tmp_path):
    """No fixed text measured on other data: the report fits both and says what it saw."""
    out = tmp_path / "report"
    assert main(["analyze", str(small_folder), "--out", str(out), "--bootstrap", "200",
                 "--mixed-rows", "300"]) == 0
    html = (out / "report.html").read_text()
    mixed = html[html.index("id='mixed'"):html.index("id='scaling'")]
    found = re.search(r"fitted on a subsample</b> \(([\d,]+) of ([\d,]+) rows", mixed)
    assert found and int(found.group(1).replace(",", "")) <= 300 < \
        int(found.group(2).replace(",", ""))
    table = pd.read_csv(out / "tables" / "mixed_model_subsample.csv")
    fixed = table[table["kind"] == "fixed effect"]
    assert (f"{fixed['width_ratio'].min():.2f}-{fixed['width_ratio'].max():.2f} times as wide"
            in mixed)
    assert fixed["width_ratio"].max() > 1.5  # 300 rows against about 3,000
    assert "3.5x" not in html and "104,312" not in html


def _imi_release(small, path: Path) -> Path:
    """`small` written as IMI's release writes it: choice semantic (b = the max query)."""
    r = small.responses
    imi = pd.DataFrame({"participant_id": r["participant_id"], "model": r["model"],
                        "layer": r["layer"], "channel": r["channel"],
                        "batch": r["batch"].fillna(-1),
                        "mode": r["condition"].replace({"synthetic": "optimized"}).where(
                            ~r["is_catch"], "catch_trial"),
                        "correct": r["correct"], "confidence": r["confidence"],
                        "choice": r["correct"].map({True: "b", False: "a"}), "rt": r["rt_ms"],
                        "trial_index": r["trial_index"], "is_demo": r["phase"] == "practice",
                        "catch_trial": r["is_catch"]})
    imi.to_csv(path, index=False)
    return path


def test_analyze_imi_format(tmp_path, small, capsys):
    """Accurate participants are kept: the response-rows rule is not applicable to IMI's data."""
    path = _imi_release(small, tmp_path / "responses_main.csv")
    units = tmp_path / "units.csv"
    small.units[["model", "layer", "channel", "layer_position"]].to_csv(units, index=False)
    out = tmp_path / "o"
    assert main(["analyze", str(path), "--format", "imi", "--out", str(out),
                 "--bootstrap", "200", "--units", str(units)]) == 0
    printed = capsys.readouterr().out
    summary = pd.read_csv(out / "tables" / "exclusion_summary.csv").set_index("rule")
    rows = summary.loc["response_rows"]
    assert (rows["evaluated"], rows["participants"]) == (0, 0)
    assert rows["note"].startswith("not applicable: query positions not in the data")
    # What is left is the catch rule: everyone with >= 4 of 5 catch trials right is kept.
    r = small.responses
    catch = r[r["is_catch"] & (r["phase"] == "main")].groupby("participant_id")["correct"].mean()
    flags = pd.read_csv(out / "tables" / "participant_flags.csv").set_index("participant_id")
    kept = set(flags.index[~flags["excluded"]])
    assert kept == set(catch.index[catch >= 0.8]) and len(kept) > 0.8 * len(flags)
    assert not flags["exclusion_reasons"].fillna("").str.contains("response_rows").any()
    assert f"{len(kept)} of {len(flags)} participants kept" in printed
    assert "query positions not in the data" in printed
    html = (out / "report.html").read_text()
    assert "not applicable: query positions not in the data" in html
    # --units gives the layer-depth table and figure
    depth = pd.read_csv(out / "tables" / "depth_spearman.csv")
    assert set(depth["model"]) == set(small.units["model"].dropna()) - {"catch", "practice"}
    assert "figures/depth.png" in html and (out / "figures" / "depth.svg").exists()


def test_bad_units_file_is_one_line_and_exit_code_2(tmp_path, small, capsys):
    path = _imi_release(small, tmp_path / "responses_main.csv")
    units = tmp_path / "units.csv"
    small.units[["model", "layer", "layer_position"]].to_csv(units, index=False)
    assert main(["analyze", str(path), "--format", "imi", "--out", str(tmp_path / "o"),
                 "--units", str(units)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {units}: the units table lacks columns unit_id (or model, layer and "
                   f"channel) (the file has: model, layer, layer_position)")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("make_input", ["missing", "bad_columns", "empty_folder"])
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, capsys, make_input, small):
    if make_input == "missing":
        data = tmp_path / "nope"
    elif make_input == "bad_columns":
        data = tmp_path / "responses.csv"
        small.responses.drop(columns=["correct"]).head(50).to_csv(data, index=False)
    else:
        data = tmp_path / "empty"
        data.mkdir()
    rc = main(["analyze", str(data), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("error:")
    assert "Traceback" not in err


def test_console_command_exit_code_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("interpsy")
    if not exe.exists():
        pytest.skip("the interpsy console script is not installed in this environment")
    proc = subprocess.run([str(exe), "analyze", str(tmp_path / "missing"), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_analysis_never_imports_torch_server_or_flask():
    code = ("import sys, analysis, analysis.report, analysis.cli, analysis.plots; "
            "bad = [m for m in ('torch', 'server', 'flask') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_plots_accept_intervals_that_exclude_the_estimate():
    """BCa intervals can lie beside the estimate (or be rounded past it): plots must not fail."""
    import pandas as pd

    from analysis.plots import plot_model_scores

    scores = pd.DataFrame({"model": ["m1", "m2"], "condition": ["natural", "natural"],
                           "score": [1.0, 0.8], "ci_low": [1.0 + 1e-12, 0.82],
                           "ci_high": [1.0, 0.9]})
    figure = plot_model_scores(scores)
    assert figure.axes


def test_analysis_of_a_perfect_dataset_skips_the_mixed_model():
    """Every answer correct (a tiny pilot): the report still runs; no model is fitted to constants."""
    from analysis import simulate
    from analysis.report import run_analysis

    dataset = simulate(models=2, units_per_model=6, responses_per_unit=4, trials_per_task=4,
                       catch_per_task=1, seed=3)
    dataset.responses["correct"] = True
    result = run_analysis(dataset, n_resamples=200, power_sims=20, rules=[])
    assert "mixed_model_fixed" not in result.tables
    assert (result.tables["model_scores"]["score"] == 1.0).all()


def test_margin_and_mixed_rows_reach_the_analysis(small_folder, tmp_path):
    import json

    from analysis import cli, scaling

    assert cli.DEFAULT_MARGIN == scaling.DEFAULT_MARGIN
    out = tmp_path / "report"
    assert main(["analyze", str(small_folder), "--out", str(out), "--bootstrap", "200",
                 "--margin", "0.02", "--mixed-rows", "600"]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["tost_margin"] == 0.02 and settings["mixed_rows"] == 600
    assert (pd.read_csv(out / "tables" / "scaling_slopes.csv")["margin"] == 0.02).all()
    fixed = pd.read_csv(out / "tables" / "mixed_model_fixed.csv")
    assert not fixed.empty
    assert main(["analyze", str(small_folder), "--out", str(out), "--margin", "0"]) == 2


def test_the_cli_offers_the_engines_the_analysis_has():
    from analysis.cli import ENGINES
    from analysis.stats import ENGINES as ANALYSIS_ENGINES

    assert ENGINES == ANALYSIS_ENGINES
