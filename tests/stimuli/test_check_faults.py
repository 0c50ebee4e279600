"""`stimuli check` finds what a tampered or damaged set hides: each fault case once."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from experiments.cli import main
from experiments.stimulus_set import IMAGES_CSV, MANIFEST, UNITS_CSV
from experiments.stimulus_set.integrity import TABLES_KEY, table_hashes
from stimuli.build import BuildOptions, build_stimulus_set


@pytest.fixture(scope="module")
def good(image_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "set"
    return build_stimulus_set("tiny-cnn", image_folder, out,
        BuildOptions(n_units=2, seed=3, pretrained=False,
                     n_batches=2, render_steps=4, n_diverse=2, max_exponent=0,
                     binary_steps=0, workers=0, progress=False))


def _rows(folder: Path, name: str) -> list[dict]:
    with open(folder / name, newline="") as handle:
        return list(csv.DictReader(handle))


def _write(folder: Path, name: str, rows: list[dict], rehash: bool = True) -> None:
    """Rewrite a table; `rehash` also updates the manifest's hash (a careful forger)."""
    with open(folder / name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if rehash:
        manifest = json.loads((folder / MANIFEST).read_text())
        manifest[TABLES_KEY] = table_hashes(folder, (UNITS_CSV, IMAGES_CSV))
        (folder / MANIFEST).write_text(json.dumps(manifest))


def _edit_units(folder, column, value, rehash=True):
    rows = _rows(folder, UNITS_CSV)
    rows[0][column] = value(rows[0][column])
    _write(folder, UNITS_CSV, rows, rehash)


def truncated_png(folder):
    path = folder / _rows(folder, IMAGES_CSV)[0]["path"]
    path.write_bytes(path.read_bytes()[:-200])


def fv_activation(folder):
    _edit_units(folder, "fv_activation", lambda v: str(float(v) + 1.0))


def top_natural(folder):
    _edit_units(folder, "top_natural_activation", lambda v: str(float(v) * 0.5))


def beats(folder):
    _edit_units(folder, "fv_beats_natural", lambda v: "True" if v == "False" else "False")


def edited_without_rehash(folder):
    _edit_units(folder, "fv_activation", lambda v: str(float(v) + 1.0), rehash=False)


def query_is_a_reference(folder):
    rows = _rows(folder, IMAGES_CSV)
    ref = next(r for r in rows if r["kind"] == "natural" and r["role"] == "reference_max")
    query = next(r for r in rows if r["unit_id"] == ref["unit_id"] and r["batch"] == ref["batch"]
                 and r["role"] == "query_max")
    shutil.copyfile(folder / ref["path"], folder / query["path"])
    query["sha256"] = ref["sha256"]
    _write(folder, IMAGES_CSV, rows)


def query_is_a_reference_of_another_batch(folder):
    """The same photograph mined twice: a query is a max reference of another batch."""
    rows = _rows(folder, IMAGES_CSV)
    query = next(r for r in rows if r["kind"] == "natural" and r["role"] == "query_max")
    ref = next(r for r in rows if r["unit_id"] == query["unit_id"] and r["kind"] == "natural"
               and r["role"] == "reference_max" and r["batch"] != query["batch"])
    shutil.copyfile(folder / ref["path"], folder / query["path"])
    query["sha256"] = ref["sha256"]
    _write(folder, IMAGES_CSV, rows)


def flipped_sign(folder):
    rows = _rows(folder, IMAGES_CSV)
    unit = rows[0]["unit_id"]
    for row in rows:
        if row["unit_id"] == unit and row["kind"] == "natural":
            row["activation"] = str(-float(row["activation"]))
    _write(folder, IMAGES_CSV, rows)


def renamed_model_cut_units(folder):
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["model"], manifest["units"] = "resnet50", manifest["units"][:1]
    (folder / MANIFEST).write_text(json.dumps(manifest))


def fv_removed(folder):
    rows = _rows(folder, IMAGES_CSV)
    unit = rows[0]["unit_id"]
    _write(folder, IMAGES_CSV, [r for r in rows if not (r["unit_id"] == unit
                                                        and r["kind"] == "synthetic")])


def grey_fv_hash_updated(folder):
    """An FV replaced by grey with its images.csv hash updated (not the manifest's)."""
    import hashlib
    rows = _rows(folder, IMAGES_CSV)
    fv = next(r for r in rows if r["kind"] == "synthetic")
    Image.new("RGB", Image.open(folder / fv["path"]).size, (128, 128, 128)).save(folder / fv["path"])
    fv["sha256"] = hashlib.sha256((folder / fv["path"]).read_bytes()).hexdigest()
    _write(folder, IMAGES_CSV, rows, rehash=False)


FAULTS = [(truncated_png, ["--no-hashes"], "not a readable image"),
          (fv_activation, [], "fv_activation"),
          (top_natural, [], "top_natural_activation"),
          (beats, [], "fv_beats_natural"),
          (edited_without_rehash, [], "units.csv does not match its sha256"),
          (query_is_a_reference, [], "same image as a reference of its batch"),
          (query_is_a_reference_of_another_batch, [], "(the same photograph mined twice?)"),
          (flipped_sign, [], "less activating than a min reference"),
          (renamed_model_cut_units, [], "the manifest lists 1 units"),
          (fv_removed, [], "visualizations removed"),
          (grey_fv_hash_updated, [], "images.csv does not match its sha256")]


@pytest.mark.parametrize("fault, args, message", FAULTS, ids=[f[0].__name__ for f in FAULTS])
def test_check_finds_the_fault(good, tmp_path, capsys, fault, args, message):
    assert main(["stimuli", "check", str(good)]) == 0
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    fault(broken)
    capsys.readouterr()
    assert main(["stimuli", "check", str(broken), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_recompute_finds_a_swapped_image_whose_hashes_were_all_updated(good, tmp_path, capsys):
    assert main(["stimuli", "check", str(good), "--recompute", "40", "--random-init"]) == 0
    assert "recomputed 40 activations: all match" in capsys.readouterr().out
    broken = tmp_path / "broken"
    shutil.copytree(good, broken)
    rows = _rows(broken, IMAGES_CSV)
    photo = next(r for r in rows if r["kind"] == "natural")  # a short render is near grey
    for fv in (r for r in rows if r["kind"] == "synthetic"):
        shutil.copyfile(broken / photo["path"], broken / fv["path"])
        import hashlib
        fv["sha256"] = hashlib.sha256((broken / fv["path"]).read_bytes()).hexdigest()
    _write(broken, IMAGES_CSV, rows)
    assert main(["stimuli", "check", str(broken)]) == 0  # every hash agrees
    assert main(["stimuli", "check", str(broken), "--recompute", "40", "--random-init"]) == 2
    assert "recomputed activations differ" in capsys.readouterr().err
