"""`interpsy stimuli ...`: stimulus set commands (torch is imported only by the commands needing it).

Every command works on an output folder OUT: `sample`, `mine` and `render` keep their work in
`OUT/_work/` and resume it; `build` runs all steps (skipping finished ones) and writes the set.
Under torchrun, `--shard` defaults to RANK/WORLD_SIZE and `--device cuda` to cuda:LOCAL_RANK.
"""
from __future__ import annotations

import shlex

import click

from experiments.stimulus_set import load_stimulus_set
from stimuli.errors import StimuliError
from stimuli.schedules import SCHEDULES


@click.group()
def stimuli() -> None:
    """Sample units, mine exemplars, render feature visualizations and check stimulus sets."""


@stimuli.command()
@click.argument("set_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--hashes/--no-hashes", default=True, help="Verify every image's sha256.")
@click.option("--recompute", "recompute_n", type=click.IntRange(min=0), default=0,
              metavar="N", help="Load the model and recompute N sampled images' activations.")
@click.option("--weights", "weights_path", default=None, type=click.Path(dir_okay=False),
              help="Model weights for --recompute (default: the registry's).")
@click.option("--random-init", is_flag=True, help="--recompute with the seeded random init "
                                                  "(sets built with --random-init).")
@click.option("--seed", type=int, default=0, show_default=True, help="--recompute's sample.")
@click.option("--device", default="cpu", show_default=True, help="--recompute's torch device.")
@click.option("--reliability", is_flag=True,
              help="Compare each unit's feature visualizations' paths through the earlier "
                   "layers with its natural exemplars'; flag the units they reach by another "
                   "route (units.csv fv_reliable, reliability.csv).")
def check(set_dir: str, hashes: bool, recompute_n: int, weights_path: str | None,
          random_init: bool, seed: int, device: str, reliability: bool) -> None:
    """Validate a stimulus set folder: manifest, tables (hashes, structure, activations), image
    files (decoded in full), with --recompute the activations themselves, and with
    --reliability the feature visualizations' routes to the unit."""
    stimulus_set = load_stimulus_set(set_dir, verify_images=True, verify_hashes=hashes,
                                     decode_images=True)
    if reliability:
        from stimuli.build import env_device
        from stimuli.reliability import check_reliability

        table = check_reliability(stimulus_set, not random_init, weights_path,
                                  env_device(device), progress=False)
        flagged = sorted(set(table.unit_id[table.outlier]))
        click.echo(f"visualization paths: {len(flagged)} of {table.unit_id.nunique()} units "
                   f"reached by a route their natural exemplars do not take"
                   + (f": {', '.join(flagged[:5])}" if flagged else ""))
        stimulus_set = load_stimulus_set(set_dir, verify_images=False)
    if recompute_n:
        from stimuli.build import env_device
        from stimuli.recompute import recompute

        n, problems = recompute(stimulus_set, recompute_n, seed, not random_init, weights_path,
                                env_device(device))
        if problems:
            raise StimuliError(f"{stimulus_set.path}: {len(problems)} of {n} recomputed "
                               f"activations differ: " + "; ".join(problems[:3]))
        click.echo(f"recomputed {n} activations: all match")
    n_images = len(stimulus_set.images)
    click.echo(f"ok: {stimulus_set.path}: {len(stimulus_set.units)} units, {n_images} images, "
               f"model {stimulus_set.manifest['model']}")
    unbeaten = stimulus_set.units_fv_not_beating_natural()
    if unbeaten:
        click.echo(f"warning: {len(unbeaten)} of {len(stimulus_set.units)} units have feature "
                   f"visualizations that do not beat their natural exemplars; `experiment build` "
                   f"leaves them out (IMI's rule): {', '.join(unbeaten[:5])}"
                   f"{' ...' if len(unbeaten) > 5 else ''}", err=True)


@stimuli.command()
@click.option("--all", "show_all", is_flag=True, help="Include the tiny test models.")
def models(show_all: bool) -> None:
    """List the registered models with their scaling facts."""
    from stimuli.registry import get_spec, model_names

    for name in model_names(include_test=show_all):
        spec = get_spec(name)
        deviation = f"  deviates from IMI: {spec.deviation}" if spec.deviation else ""
        click.echo(f"{name:20s} {spec.source:12s} params={spec.n_params or '?'} "
                   f"top1={spec.top1 or '?'} train={spec.train_size or '?'}  {spec.weights}"
                   f"{deviation}")


@stimuli.command()
@click.argument("model")
@click.option("--layers", "layer_regex", default=None, metavar="REGEX",
              help="Show only the layers this regex fully matches (as `build --layers`).")
def layers(model: str, layer_regex: str | None) -> None:
    """List MODEL's sampleable (relevant) layers: depth, layout and unit count (no weights)."""
    import re

    from stimuli.layers import layer_depths, layer_widths, relevant_layers
    from stimuli.registry import get_spec, load_model

    spec = get_spec(model)
    net = load_model(model, pretrained=False)
    relevant = relevant_layers(net, spec)
    widths = layer_widths(net, spec, relevant)
    depths = layer_depths(relevant)
    shown = [layer for layer in relevant
             if layer_regex is None or re.fullmatch(layer_regex, layer)]
    if not shown:
        raise StimuliError(f"--layers {layer_regex!r} matches none of {model}'s "
                           f"{len(relevant)} relevant layers ({relevant[0]} ... {relevant[-1]})")
    click.echo(f"{'depth':>6s}  {'units':>6s}  {'layout':14s}  layer")
    for layer in shown:
        click.echo(f"{depths[layer]:6.3f}  {widths[layer]:6d}  {spec.layout(layer):14s}  {layer}")
    click.echo(f"{len(shown)} of {len(relevant)} relevant layers, "
               f"{sum(widths[x] for x in shown)} units; `interpsy stimuli build ... --layers "
               f"REGEX` samples a layer uniformly among them, then a channel (IMI)")


def _parse_shard(text: str | None) -> tuple[int, int]:
    from stimuli.build import env_shard

    if text is None:
        return env_shard() or (0, 1)
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise StimuliError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise StimuliError(f"--shard {text}: need 0 <= i < n")
    return i, n


def _command_line() -> str:
    """The command line this command was started with, as `interpsy ...`."""
    root = click.get_current_context().find_root()
    return "interpsy " + shlex.join((root.obj or {}).get("argv", []))


def _model_options(f):
    f = click.option("--weights", "weights_path", default=None,
                     help="Weights file (default: the local torch/timm/open_clip cache).")(f)
    f = click.option("--random-init", is_flag=True,
                     help="Random weights (tests, tiny models).")(f)
    f = click.option("--device", default="cpu", show_default=True,
                     help="cpu, cuda, cuda:1, ...")(f)
    return f


def _units_options(f):
    f = click.option("--n-units", type=int, default=None, help="Units to sample (IMI: 100).")(f)
    f = click.option("--unit", "unit_list", multiple=True,
                     help="Explicit unit LAYER:CHANNEL (repeatable) instead of sampling.")(f)
    f = click.option("--seed", type=int, default=42, show_default=True)(f)
    f = click.option("--layers", "layer_regex", default=None, metavar="REGEX",
                     help="Sample only from the relevant layers this regex fully matches.")(f)
    return f


def _mining_options(f):
    f = click.option("--n-batches", type=int, default=20, show_default=True,
                     help="Batches per unit (= images per bin).")(f)
    f = click.option("--n-bins", type=int, default=10, show_default=True,
                     help="Bins per side: n_bins-1 references + 1 query.")(f)
    f = click.option("--batch-size", type=click.IntRange(min=1), default=None,
                     help="Images per mining forward pass (default: 16 on the CPU, where 64 "
                          "holds 1 GB more for no speed, 64 on a GPU).")(f)
    f = click.option("--workers", type=int, default=2, show_default=True,
                     help="DataLoader worker processes.")(f)
    f = click.option("--store-activations/--no-store-activations", default=True,
                     show_default=True,
                     help="Spill activations to disk for exact percentile queries.")(f)
    f = click.option("--skip-unreadable", is_flag=True,
                     help="Skip unreadable images instead of stopping.")(f)
    f = click.option("--decode", type=click.Choice(["pil", "torchvision"]), default="pil",
                     show_default=True,
                     help="JPEG decoding: PIL in the workers, or batched torchvision on the "
                          "device (nvJPEG on a GPU).")(f)
    return f


def _render_options(f):
    f = click.option("--schedule", "schedule_name", type=click.Choice(SCHEDULES),
                     default="imi", show_default=True,
                     help="imi: IMI's GPU schedule (up to 20,000 steps, plateau stop from "
                          "2,500; alpha search 1..1e5 and 7 bisections). cpu: 512 steps, "
                          "plateau stop from 256 (128-step window, EMA 0.9), alpha search "
                          "1, 10 and 1 bisection; the options below change either.")(f)
    f = click.option("--steps", "render_steps", type=click.IntRange(min=1), default=None,
                     help="Cap of optimisation steps (default: the schedule's); a cap below "
                          "its minimum runs exactly that many steps.")(f)
    f = click.option("--min-steps", type=click.IntRange(min=1), default=None,
                     help="Steps before the plateau stop may act (default: the schedule's, "
                          "or the cap when lower).")(f)
    f = click.option("--plateau-window", type=click.IntRange(min=2), default=None,
                     help="Steps over which the plateau is judged (default: the "
                          "schedule's).")(f)
    f = click.option("--smoothing", type=click.FloatRange(0, 1, max_open=True), default=None,
                     help="EMA factor of the gradient norm (default: the schedule's).")(f)
    f = click.option("--n-diverse", type=int, default=8, show_default=True)(f)
    f = click.option("--alpha", type=float, default=None,
                     help="Fixed diversity weight (default: the schedule's search).")(f)
    f = click.option("--max-exponent", type=int, default=None,
                     help="Alpha search tries 1, 10, ... 10^max_exponent (imi: 5, cpu: 1).")(f)
    f = click.option("--binary-steps", type=int, default=None,
                     help="Bisections after the search's first failure (imi: 7, cpu: 1).")(f)
    f = click.option("--diversity-layer", "diversity_layers", multiple=True,
                     help="Compare the diverse images' Gram matrices at this layer instead of "
                          "at each unit's own, as IMI does ('unit': each unit's own); "
                          "repeatable: the penalty is the mean of the layers' (e.g. 'unit' and "
                          "an early layer, for images that differ in colour as well as in "
                          "content). Recorded.")(f)
    f = click.option("--render-batch", type=int, default=64, show_default=True,
                     help="Images optimised together in one loop (each unit renders 2 x "
                          "(9 + n-diverse) images in its first alpha round, so 64 holds one "
                          "unit there). A unit's images do not depend on it.")(f)
    f = click.option("--forward-batch", type=click.IntRange(min=0), default=None,
                     help="Images per forward pass, whole jobs (a unit's max or min, plain or "
                          "diverse); 0: one job per pass (cut by --pass-images). Default: 0 on "
                          "the CPU, --render-batch on a GPU. Recorded in the "
                          "manifest: kernels sum in a batch-size-dependent order, so another "
                          "value changes the images by float rounding.")(f)
    f = click.option("--pass-images", type=click.IntRange(min=0), default=None,
                     help="A job's images per forward pass: a larger job runs in passes of "
                          "at most this many (its diversity term stays exact, for one more "
                          "pass without gradient over all but its first part); 0: the whole "
                          "job. Default: 2 on the CPU (efficientnet-lite0 under 2 GB; 0 is "
                          "faster, in 2.9 GB), 0 on a GPU. Recorded in the manifest.")(f)
    f = click.option("--channels-last/--no-channels-last", default=None,
                     help="Run the model in channels-last memory format (its convolutions "
                          "run faster on the CPU; images and activations change by float "
                          "rounding). The render's default: on for the CPU, off on a GPU; a "
                          "build mines channels-last unless --no-channels-last. Recorded in the "
                          "manifest.")(f)
    return f


@stimuli.command()
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@_units_options
@_model_options
def sample(model, out, n_units, unit_list, seed, layer_regex, weights_path, random_init, device):
    """Sample units of MODEL (IMI two-stage) or check an explicit list; store them in OUT."""
    from stimuli.build import prepare_units

    chosen = prepare_units(model, out, n_units or (None if unit_list else 100), list(unit_list),
                           seed, pretrained=False, layers=layer_regex)
    click.echo(f"{len(chosen)} units of {model} in {out}/_work/units.json")


@stimuli.command()
@click.argument("model")
@click.argument("images", type=click.Path())
@click.argument("out", type=click.Path(file_okay=False))
@_units_options
@_mining_options
@_model_options
@click.option("--shard", default=None, help="i/n: mine the i-th of n slices of the images.")
@click.option("--channels-last/--no-channels-last", default=True, show_default=True,
              help="The model in channels-last memory format (faster on the CPU too; "
                   "activations change by float rounding). A CPU shard started before it was "
                   "the default resumes with --no-channels-last.")
@click.option("--progress/--no-progress", default=True)
def mine(model, images, out, n_units, unit_list, seed, layer_regex, n_batches, n_bins, batch_size, workers,
         store_activations, skip_unreadable, decode, weights_path, random_init, device, shard,
         channels_last, progress):
    """Mine MODEL's exemplars for OUT's units over IMAGES (a folder or a file list)."""
    from stimuli.build import env_device, load, prepare_files, prepare_units
    from stimuli.mining import MiningConfig, mine_shard, mining_batch

    shard_ = _parse_shard(shard)
    device = env_device(device)
    spec, net, weights = load(model, not random_init, weights_path, device)
    chosen = prepare_units(model, out, n_units, list(unit_list), seed, net, layers=layer_regex)
    files = prepare_files(images, out)
    cfg = MiningConfig(k=n_bins * n_batches, batch_size=mining_batch(batch_size, device),
                       workers=workers,
                       device=device, store_activations=store_activations,
                       skip_unreadable=skip_unreadable, decode=decode,
                       channels_last=channels_last)
    path = mine_shard(net, spec, weights, chosen, files, f"{out}/_work", cfg, shard_, progress)
    click.echo(f"mined shard {shard_[0]}/{shard_[1]}: {path}")


@stimuli.command()
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False))
@_render_options
@_model_options
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--shard", default=None, help="i/n: render every n-th unit starting at i.")
@click.option("--progress/--no-progress", default=True)
def render(model, out, schedule_name, render_steps, min_steps, plateau_window, smoothing,
           n_diverse, alpha, max_exponent, binary_steps, diversity_layers, render_batch,
           forward_batch, pass_images, channels_last, weights_path, random_init, device, seed,
           shard, progress):
    """Render feature visualizations for OUT's mined units (needs finished mining)."""
    import json
    from pathlib import Path

    from stimuli.build import env_device, finished_mining_shards, load, render_stage
    from stimuli.cpu import steady_allocator
    from stimuli.layers import check_diversity_layers
    from stimuli.mining import merge_shards
    from stimuli.render import schedule_for, search_for
    from stimuli.sampling import load_units

    steady_allocator()
    shard_ = _parse_shard(shard)
    device = env_device(device)
    work = Path(out) / "_work"
    n_shards = finished_mining_shards(out)
    if n_shards is None or not (work / "units.json").is_file():
        raise StimuliError(f"{out}: mining has not finished; run `interpsy stimuli mine` first")
    chosen, _ = load_units(work / "units.json")
    files = json.loads((work / "files.json").read_text())["files"]
    result = merge_shards(work, n_shards, [u.unit_id for u in chosen], files)
    spec, net, _ = load(model, not random_init, weights_path, device)
    schedule = schedule_for(schedule_name, render_steps, min_steps, plateau_window, smoothing,
                            render_batch, forward_batch, device, pass_images, channels_last)
    search = search_for(schedule_name, n_diverse, alpha, max_exponent, binary_steps,
                        diversity_layers)
    check_diversity_layers(net, spec, search.layers)
    render_stage(net, spec, chosen, result, Path(out), schedule, search, device, seed, progress,
                 shard_)
    click.echo(f"rendered shard {shard_[0]}/{shard_[1]} of {len(chosen)} units in {work}/render")


@stimuli.command()
@click.argument("model")
@click.argument("images", type=click.Path())
@click.argument("out", type=click.Path(file_okay=False))
@_units_options
@_mining_options
@_render_options
@_model_options
@click.option("--difficulty", "difficulties", multiple=True,
              help="p99, p95, p85 (repeatable; default: all the image count allows).")
@click.option("--no-render", is_flag=True, help="Natural exemplars only.")
@click.option("--name", default=None, help="Set name (default: OUT's folder name).")
@click.option("--progress/--no-progress", default=True)
def build(model, images, out, n_units, unit_list, seed, layer_regex, n_batches, n_bins, batch_size, workers,
          store_activations, skip_unreadable, decode, schedule_name, render_steps, min_steps,
          plateau_window, smoothing, n_diverse, alpha, max_exponent, binary_steps,
          diversity_layers, render_batch, forward_batch, pass_images, channels_last, weights_path,
          random_init, device, difficulties, no_render,
          name, progress):
    """Sample, mine, render and write a ready stimulus set for MODEL into OUT (resumes)."""
    from stimuli.build import BuildOptions, build_stimulus_set, env_device

    path = build_stimulus_set(model, images, out, BuildOptions(
        n_units=n_units if (n_units or unit_list) else 100, units=list(unit_list) or None,
        seed=seed, pretrained=not random_init, weights_path=weights_path, n_batches=n_batches,
        n_bins=n_bins, difficulties=list(difficulties) or None, render=not no_render,
        render_steps=render_steps, min_steps=min_steps, plateau_window=plateau_window,
        smoothing=smoothing, n_diverse=n_diverse, alpha=alpha, max_exponent=max_exponent,
        binary_steps=binary_steps, diversity_layers=diversity_layers,
        schedule_name=schedule_name, max_render_batch=render_batch,
        forward_batch=forward_batch, pass_images=pass_images, channels_last=channels_last,
        device=env_device(device),
        batch_size=batch_size, workers=workers, store_activations=store_activations,
        skip_unreadable=skip_unreadable, decode=decode, name=name, layers=layer_regex,
        progress=progress, command=_command_line()))
    stimulus_set = load_stimulus_set(path, verify_images=True, verify_hashes=True)
    click.echo(f"ok: {path}: {len(stimulus_set.units)} units, {len(stimulus_set.images)} images")


@stimuli.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=str))
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--distortion", "distortions", multiple=True,
              help="NAME (the model-vs-human benchmark's levels) or NAME:L1,L2,... ; repeat for "
                   "several. Names: original, colour, contrast, low-pass, high-pass, "
                   "phase-scrambling, power-equalisation, false-colour, rotation, uniform-noise "
                   "(docs/categorisation.md). Default: original.")
@click.option("--size", type=click.IntRange(min=16), default=224, show_default=True,
              help="Side of every image in pixels (a centred square of the source).")
@click.option("--per-category", type=click.IntRange(min=1), default=None,
              help="Use this many images of each category (a seeded draw); needed when the "
                   "categories hold different numbers of images.")
@click.option("--name", default="categories", show_default=True,
              help="The set's name: the `model` of its units (name/category/number).")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of every random step (draw, noise, masks).")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def categories(folder, out, distortions, size, per_category, name, seed, progress):
    """A categorisation stimulus set from FOLDER (one subfolder of images per category): each
    image at every level of each distortion, with its own 1/f noise mask, into OUT."""
    from stimuli.categorisation_set import build_categorisation_set, parse_distortions

    chosen = parse_distortions(distortions)
    made = build_categorisation_set(folder, out, chosen, size=size, seed=seed, name=name,
                                    per_category=per_category, progress=progress,
                                    command=_command_line())
    stimulus_set = load_stimulus_set(made)
    levels = ", ".join(f"{d} ({len(v)} levels)" for d, v in chosen.items())
    click.echo(f"categorisation set written to {made}: {len(stimulus_set.units)} images of "
               f"{len(stimulus_set.categories)} categories at {levels}")


@stimuli.command()
@click.argument("set_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--fraction", type=click.FloatRange(0, 1, min_open=True), default=0.4,
              show_default=True, help="Occluder side / image side (0.4: 90 px on 224).")
@click.option("--stride", type=click.IntRange(min=1), default=2, show_default=True,
              help="Occluder step in pixels (every position's activation is kept).")
@click.option("--blur-sigma", type=click.FloatRange(min=0, min_open=True), default=8.0,
              show_default=True, help="Gaussian blur of the blurred references, in pixels.")
@click.option("--blur-stride", type=click.IntRange(min=1), default=8, show_default=True,
              help="Step of the sharp window searched on each blurred reference.")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@_model_options
def occlusion(set_dir, fraction, stride, blur_sigma, blur_stride, batch_size, progress,
              weights_path, random_init, device):
    """Add the occlusion task's images (Zimmermann et al. 2021) to a built set: each batch's
    top image occluded at every position, the occlusions keeping the activation highest and
    lowest, a catch image and blurred references. Resumes; the set stays valid."""
    from stimuli.build import env_device
    from stimuli.occlusion import OcclusionConfig
    from stimuli.occlusion_set import add_occlusion

    cfg = OcclusionConfig(fraction=fraction, stride=stride, blur_sigma=blur_sigma,
                          blur_stride=blur_stride, batch_size=batch_size)
    out = add_occlusion(set_dir, cfg, pretrained=not random_init, weights_path=weights_path,
                        device=env_device(device), progress=progress, command=_command_line())
    click.echo(f"occlusion images added to {out}")


@stimuli.command()
@click.argument("set_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--shift", "shifts", multiple=True, metavar="NAME:SEVERITY",
              help="A shifted pool of the set's own images, e.g. blur:3 (repeatable; shifts: "
                   "blur, noise, contrast, hue, greyscale, cutout, edges, stylise; 1-5).")
@click.option("--domain", "domains", multiple=True, metavar="NAME=FOLDER",
              help="A folder of images as its own query distribution (repeatable).")
@click.option("--images", default=None, type=click.Path(),
              help="The set's image source, if not where its manifest says.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per mining forward pass (default: 16 on the CPU, 64 on a GPU).")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="DataLoader worker processes.")
@click.option("--skip-unreadable", is_flag=True,
              help="Skip unreadable images instead of stopping.")
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@_model_options
def shift(set_dir, shifts, domains, images, batch_size, workers, skip_unreadable, progress,
          weights_path, random_init, device):
    """Add queries from shifted distributions to a built set: each --shift pool is the set's
    images shifted (seeded per image), each --domain a folder; mined for the set's units and
    picked with the set's own query rule; references stay in distribution. Resumes."""
    from stimuli.build import env_device
    from stimuli.mining import mining_batch
    from stimuli.shifted_set import add_shifted_queries

    named = {}
    for text in domains:
        name, sep, folder = text.partition("=")
        if not sep or not folder:
            raise StimuliError(f"--domain {text!r}: expected NAME=FOLDER")
        named[name] = folder
    out = add_shifted_queries(set_dir, shifts, named, images, pretrained=not random_init,
                              weights_path=weights_path, device=env_device(device),
                              batch_size=mining_batch(batch_size, env_device(device)),
                              workers=workers,
                              skip_unreadable=skip_unreadable, progress=progress,
                              command=_command_line())
    added = load_stimulus_set(out).manifest["query_distributions"]
    click.echo(f"queries from {', '.join(sorted(added))} in {out}")


@stimuli.command()
@click.argument("set_dir", type=click.Path(file_okay=False, path_type=str))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for proxy_faithfulness.csv, proxy_summary.csv and proxies.json.")
@click.option("--proxy", "kinds", multiple=True, type=click.Choice(["rank", "prototypes",
                                                                      "weights"]),
              help="Proxy kinds (repeatable; default all): rank-k projection of the layer's "
                   "input, k-prototype quantiser of it, rank-k SVD of the unit's weights.")
@click.option("--k", "ks", default=None, metavar="K,K,...",
              help="The sweep's k (default: 1, 2, 4, ... up to no simplification).")
@click.option("--fit-images", type=click.IntRange(min=1), default=200, show_default=True,
              help="Images the proxies are fitted on (none of them shown by the set).")
@click.option("--eval-images", type=click.IntRange(min=2), default=200, show_default=True,
              help="Held-out images for rank correlation and top-9 overlap.")
@click.option("--images", default=None, type=click.Path(),
              help="The set's image source, if not where its manifest says.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
@_model_options
def proxies(set_dir, out, kinds, ks, fit_images, eval_images, images, seed, progress,
            weights_path, random_init, device):
    """Fit simplified proxies of every unit of a set and measure how faithful they are in and
    out of distribution (agreement on the set's query pairs, rank correlation, top-9 overlap),
    with the smallest k reaching 95% agreement in distribution."""
    from stimuli.build import env_device
    from stimuli.proxies import KINDS
    from stimuli.proxy_faithfulness import faithfulness

    try:
        sweep = [int(k) for k in ks.split(",")] if ks else None
    except ValueError:
        raise StimuliError(f"--k {ks!r}: expected numbers, e.g. 1,4,16") from None
    _, summary = faithfulness(set_dir, out, tuple(kinds) or KINDS, sweep, fit_images,
                              eval_images, images, pretrained=not random_init,
                              weights_path=weights_path, device=env_device(device), seed=seed,
                              progress=progress)
    reached = summary.k95.notna().sum()
    click.echo(f"{len(summary)} unit x proxy rows ({reached} reach 95% agreement in "
               f"distribution) in {out}")
