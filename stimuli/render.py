"""The project's feature-visualization renderer: many units, max and min, in one batch (torch).

Each *job* is one unit, one sign (+1 max, -1 min), n images and a diversity weight alpha; its
initial spectra come from the job's seed alone, drawn as lucent draws a batch. Jobs share one
Fourier parameter batch, one Adam optimiser and one transform draw per step (from the render
seed: IMI re-seeded every unit alike, so all units saw one sequence). A step runs forward
passes of whole jobs, `forward_batch` images at most (0: one job per pass, the CPU default),
and `pass_images` > 0 cuts a job's pass into passes of that many images (the CPU default, to
bound memory): a diverse job's penalty then reaches each part through the other parts' Grams
this step, the earlier parts' from their own passes, the later ones' from a pass without
gradient (the same gradient, for one more forward of all but the first part). A job's passes
hold the same images whatever shares its optimisation batch, so its images never depend on
its batch-mates, not even by float rounding. Per job the loss is
`-sign * mean(activation) + alpha * (n - 1) * mean pairwise Gram cosine` (lucid's diversity
scale). Early stop per job (IMI's code): an EMA (`ema`) of the largest
per-image norm of the spectrum gradient (inverse-FFT'd) is tracked; once more than
max(`min_steps`, `window`) steps have run and, over the last `window` steps, the mean of the
first half divided by the mean of the second half is <= `plateau`, the job is frozen (its
parameters are restored after every later step). `max_steps` caps the run.

`render_units` adds IMI's diversity-weight search per unit and sign: alpha = 1, 10, 100, ...
while the weakest of the diverse images still beats the strongest natural exemplar (the weakest
for min), then `binary_steps` bisections between the last success and the first failure. Jobs of
all units advance in lock-step rounds so every round is one batched optimisation.
"""
from __future__ import annotations

import functools
import itertools
import pickle
import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from stimuli.errors import StimuliError
from stimuli.fourier import FourierImage
from stimuli.layers import UNIT_LAYER, LayerRecorder
from stimuli.mining import memory_format, model_input, normalizer
from stimuli.objectives import (
    diversity_part,
    diversity_penalty,
    gram_vectors,
    unit_activations,
)
from stimuli.registry import ModelSpec
from stimuli.schedules import CPU_STOPPING, SCHEDULES, SEARCH, STOPPING_FIELDS, beats_target
from stimuli.transforms import StepDraws, center_crop, imi_view


@dataclass
class RenderSchedule:
    """The optimisation schedule; the defaults are IMI's. A job stops at `max_steps`, or from
    `min_steps` on when the `ema`-smoothed gradient norm plateaus over `window` steps."""

    max_steps: int = 20_000
    min_steps: int = 2_500
    window: int = 2_000
    ema: float = 0.99  # smoothing of the gradient norm
    plateau: float = 1.1
    lr: float = 0.05
    size: int = 224
    pad: int = 16
    max_batch: int = 64  # images optimised together (one lock-step loop)
    forward_batch: int = 0  # images per forward pass, whole jobs; 0: one job per pass
    pass_images: int = 0  # a job's images per forward pass; 0: all of them
    channels_last: bool = False  # the model and its inputs in channels-last memory format

    def __post_init__(self) -> None:
        if not 1 <= self.min_steps <= self.max_steps:
            raise StimuliError(f"render schedule: min_steps {self.min_steps} must lie in "
                               f"1..max_steps ({self.max_steps})")
        if self.forward_batch < 0 or self.pass_images < 0:
            raise StimuliError(f"render schedule: forward batch {self.forward_batch} and pass "
                               f"images {self.pass_images} must be 0 or more")
        if self.forward_batch and self.pass_images:
            raise StimuliError(f"render schedule: forward batch {self.forward_batch} packs "
                               f"several jobs into one forward pass, pass images "
                               f"{self.pass_images} splits one job over several: set one of "
                               f"them (the other 0)")

    @classmethod
    def cpu(cls, **kwargs) -> RenderSchedule:
        """The CPU schedule: lucent's 512 steps at Adam 0.05 (IMI's lr) and IMI's transforms,
        with IMI's plateau stop scaled down (from step 256, a 128-step window, EMA 0.9)."""
        return cls(**{**CPU_STOPPING, **kwargs})

    def check_jobs(self, jobs: list[Job]) -> None:
        """StimuliError when a job cannot go through one forward pass of `forward_batch`."""
        for job in jobs:
            if self.forward_batch and job.n > self.forward_batch:
                kind = "diverse" if job.diverse else "non-diverse"
                raise StimuliError(
                    f"render: forward batch {self.forward_batch} holds fewer than a job's {job.n} "
                    f"{kind} images (a job's images share one forward pass); use --forward-batch "
                    f"0 (one job per pass) or at least {job.n}")

    @classmethod
    def for_steps(cls, steps: int | None = None, min_steps: int | None = None,
                  window: int | None = None, smoothing: float | None = None,
                  base: str = "imi", **kwargs) -> RenderSchedule:
        """The `base` schedule (imi or cpu) with what is given changed: `steps` caps it; a cap
        below its minimum runs exactly that many steps (no plateau stop before it)."""
        if base not in SCHEDULES:
            raise StimuliError(f"unknown render schedule {base!r}; use {' or '.join(SCHEDULES)}")
        named = cls.cpu() if base == "cpu" else cls()
        cap = named.max_steps if steps is None else steps
        return cls(max_steps=cap, min_steps=min(named.min_steps, cap) if min_steps is None
                   else min_steps, window=named.window if window is None else window,
                   ema=named.ema if smoothing is None else smoothing,
                   **{"lr": named.lr, **kwargs})

    @property
    def name(self) -> str:
        """'imi' or 'cpu' when the stopping rule is that schedule's, else 'custom'."""
        for name, rule in (("imi", RenderSchedule()), ("cpu", RenderSchedule.cpu())):
            if all(getattr(self, f) == getattr(rule, f) for f in STOPPING_FIELDS):
                return name
        return "custom"


CPU_PASS_IMAGES = 2  # the CPU's default pass: lite0's demo render stays under 2 GB resident


def schedule_for(name: str, steps: int | None, min_steps: int | None, window: int | None,
                 smoothing: float | None, max_batch: int, forward_batch: int | None,
                 device: str, pass_images: int | None = None,
                 channels_last: bool | None = None) -> RenderSchedule:
    """The named schedule with the options given. Defaults: on the CPU one job per forward pass
    in passes of `CPU_PASS_IMAGES` images (under 2 GB for lite0) in channels-last memory
    format (faster convolutions); on a GPU the whole optimisation batch in one pass."""
    cpu = str(device).startswith("cpu")
    if forward_batch is None:
        forward_batch = 0 if cpu or pass_images else max_batch
    if pass_images is None:
        pass_images = CPU_PASS_IMAGES if cpu and not forward_batch else 0
    return RenderSchedule.for_steps(steps, min_steps, window, smoothing, base=name,
                                    max_batch=max_batch, forward_batch=forward_batch,
                                    pass_images=pass_images,
                                    channels_last=cpu if channels_last is None else channels_last)


N_PLAIN = 9  # IMI's non-diverse image is the best of this many renders


@dataclass(frozen=True)
class DiversitySearch:
    """How many images a unit gets and IMI's search for their diversity weight: alpha =
    `alpha_start`, x10 ... up to 10^max_exponent, then `binary_steps` bisections; `alpha` a
    number fixes the weight (one round). `layers`: the layers whose Gram matrices the diversity
    term compares, its penalty the mean of theirs (`UNIT_LAYER`: each unit's own; none: IMI's,
    the unit's own alone)."""

    n_diverse: int = 8
    alpha: float | None = None
    max_exponent: int = 5
    binary_steps: int = 7
    alpha_start: float = 1.0
    n_plain: int = N_PLAIN
    layers: tuple[str, ...] = ()

    @property
    def rounds(self) -> int:
        """The most rounds a search can take."""
        return 1 if self.alpha is not None else self.max_exponent + 1 + self.binary_steps

    def record(self) -> dict[str, Any]:
        """The settings a build records (and a resumed build must share)."""
        return {"n_diverse": self.n_diverse, "alpha": self.alpha,
                "max_exponent": self.max_exponent, "binary_steps": self.binary_steps,
                "diversity_layer": recorded_layers(self.layers)}


def recorded_layers(layers: tuple[str, ...]) -> str | list[str] | None:
    """How a build records its diversity layers: None for IMI's (each unit's own), one layer
    by name, several as a list (builds from before several could be given read alike)."""
    if layers in ((), (UNIT_LAYER,)):
        return None
    return layers[0] if len(layers) == 1 else list(layers)


def search_for(name: str, n_diverse: int = 8, alpha: float | None = None,
               max_exponent: int | None = None, binary_steps: int | None = None,
               layers: tuple[str, ...] = ()) -> DiversitySearch:
    """The named schedule's diversity search with what is given changed (empty and repeated
    layer names are left out)."""
    search = SEARCH[name]
    return DiversitySearch(
        n_diverse, alpha, search["max_exponent"] if max_exponent is None else max_exponent,
        search["binary_steps"] if binary_steps is None else binary_steps,
        layers=tuple(dict.fromkeys(layer for layer in layers if layer)))


@dataclass
class Job:
    """One unit and sign rendered as n images with diversity weight alpha."""

    layer: str
    channel: int
    sign: int
    n: int = 1
    alpha: float = 0.0
    seed: int = 0
    target: float | None = None  # the activation to beat (shown in the progress bar)
    diversity_layers: tuple[str, ...] = ()  # whose Grams the diversity compares; (): `layer`

    @property
    def diverse(self) -> bool:
        """Whether the job has a diversity term (a weight and two or more images)."""
        return self.alpha > 0 and self.n > 1

    @property
    def gram_layers(self) -> tuple[str, ...]:
        """The layers whose Gram matrices the job's diversity term compares."""
        named = self.diversity_layers or (UNIT_LAYER,)
        return tuple(dict.fromkeys(self.layer if name == UNIT_LAYER else name for name in named))


@dataclass
class JobResult:
    """Rendered images (n, size, size, 3) uint8, their final activations, steps used."""

    images: np.ndarray
    activations: np.ndarray
    steps: int
    alpha: float


def _progress_note(acts: torch.Tensor, rows_of: list[list[int]], jobs: list[Job],
                   targets: list[tuple[int, float]], active: list[bool]) -> str:
    """The bar's postfix: jobs still running, and each job's weakest image over its target
    (the lowest activation of a max job, the highest of a min job; 1 = on target)."""
    note = f"{sum(active)}/{len(jobs)} running"
    shares = []
    for j, target in targets:
        sign = jobs[j].sign
        weakest = float((acts[rows_of[j]] * sign).min()) * sign
        shares.append(weakest / target)
    if shares:
        note += f", weakest/target {min(shares):.2f}..{max(shares):.2f}"
    return note


def _chunks(jobs: list[Job], max_batch: int) -> list[list[int]]:
    chunks, current, size = [], [], 0
    for i, job in enumerate(jobs):
        if current and size + job.n > max_batch:
            chunks.append(current)
            current, size = [], 0
        current.append(i)
        size += job.n
    if current:
        chunks.append(current)
    return chunks


@dataclass
class _Batch:
    """Where each job's images sit in the optimised batch, and what each row optimises."""

    rows_of: list[list[int]]  # job -> its rows
    layers: list[str]  # row -> layer
    layouts: dict[str, str]
    channels: torch.Tensor  # row -> channel
    diverse: list[int]  # jobs with a diversity term
    job_weight: torch.Tensor  # job -> alpha * (n - 1)
    gram_layers: list[tuple[str, ...]]  # job -> the layers its diversity term compares


def _step_loss(model, recorder, view: torch.Tensor, batch: _Batch, weight: torch.Tensor,
               active: list[bool], job_grams: list[torch.Tensor] | None = None,
               first: int = 0
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass's loss on the model's view, and every row's activation. `job_grams`
    (a cut diverse job's gram_vectors this step per diversity layer, without gradient): the
    pass holds its images from `first` on, whose rows there it fills in, and gets its share of
    the penalty."""
    outputs = recorder(model, view)
    acts = unit_activations(outputs, batch.layouts, batch.layers, batch.channels)
    loss = -(weight * acts).sum()
    live = [j for j in batch.diverse if active[j]]
    if live and job_grams is not None:
        layers = batch.gram_layers[0]
        for layer, held in zip(layers, job_grams, strict=True):
            n = len(held)
            grams = gram_vectors(outputs[layer], batch.layouts[layer], n)
            end = first + len(grams)
            others = torch.cat([held[:first], held[end:]])
            loss = loss + batch.job_weight[0] * diversity_part(grams, others, n) / len(layers)
            held[first:end] = grams.detach()
    elif live:
        penalty = diversity_penalty(outputs, batch.layouts,
                                    [(batch.gram_layers[j], batch.rows_of[j]) for j in live])
        loss = loss + (batch.job_weight[live] * penalty).sum()
    return loss, acts.detach()


@dataclass
class _Pass:
    """One forward pass of a step: its jobs (chunk indices), their rows and their batch;
    `first` is the pass's first image in its job when it holds part of one job."""

    jobs: list[int]
    rows: slice
    batch: _Batch
    first: int | None = None


def _forward_passes(jobs: list[Job], rows_of: list[list[int]], layouts: dict[str, str],
                    schedule: RenderSchedule, device) -> list[_Pass]:
    """The chunk's jobs cut into forward passes of whole jobs, at most `forward_batch` images
    each (0: one job per pass), a job's pass cut into passes of at most `pass_images` images;
    each pass's `_Batch` numbers its own rows from 0."""
    groups = ([[j] for j in range(len(jobs))] if not schedule.forward_batch else
              _chunks(jobs, schedule.forward_batch))
    passes = []
    for group in groups:
        local, start = [], 0
        for j in group:
            local.append(list(range(start, start + jobs[j].n)))
            start += jobs[j].n
        row_job = [j for j in group for _ in range(jobs[j].n)]
        batch = _Batch(local, [jobs[j].layer for j in row_job], layouts,
                       torch.tensor([jobs[j].channel for j in row_job], device=device),
                       [g for g, j in enumerate(group) if jobs[j].diverse],
                       torch.tensor([jobs[j].alpha * (jobs[j].n - 1) for j in group],
                                    device=device),
                       [jobs[j].gram_layers for j in group])
        # whole consecutive jobs: the pass's rows are one slice of the chunk
        whole = _Pass(group, slice(rows_of[group[0]][0], rows_of[group[-1]][-1] + 1), batch)
        passes.extend(_split(whole, schedule.pass_images))
    return passes


def _split(whole: _Pass, pass_images: int) -> list[_Pass]:
    """One job's pass as passes of at most `pass_images` images, sizes within 1 of each other."""
    n = whole.rows.stop - whole.rows.start
    if not pass_images or n <= pass_images:
        return [whole]
    parts, b = -(-n // pass_images), whole.batch
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [_Pass(whole.jobs, slice(whole.rows.start + lo, whole.rows.start + hi),
                  _Batch([list(range(hi - lo))], b.layers[lo:hi], b.layouts,
                         b.channels[lo:hi], b.diverse, b.job_weight, b.gram_layers),
                  first=int(lo))
            for lo, hi in itertools.pairwise(bounds)]


def _view(param: FourierImage, draw, crop: int | None, to_input: Callable, rows: slice
          ) -> torch.Tensor:
    """The model's input for these rows of the parameterisation this step."""
    return to_input(imi_view(param(rows), draw, crop))


def _later_grams(model, recorder, parts: list[_Pass], view_of: Callable, n: int
                 ) -> list[torch.Tensor]:
    """A cut job's (n images) gram_vectors this step per diversity layer, without gradient, of
    the images after its first part (whose pass with gradient gives the first part's, before
    the others need them); the first part's rows are zeros until then."""
    layers, layouts = parts[0].batch.gram_layers[0], parts[0].batch.layouts
    grams: list[list[torch.Tensor]] = [[] for _ in layers]
    with torch.no_grad():
        for part in parts[1:]:
            outputs = recorder(model, view_of(part.rows))
            for held, layer in zip(grams, layers, strict=True):
                held.append(gram_vectors(outputs[layer], layouts[layer], n))
    first = parts[1].first
    return [torch.cat([held[0].new_zeros(first, *held[0].shape[1:]), *held]) for held in grams]


def _gradient_norms(param: FourierImage) -> np.ndarray:
    """IMI's plateau signal: the L2 norm of each image's spectrum gradient taken back to pixels
    (inverse FFT of the unscaled gradient)."""
    grad = torch.view_as_complex(param.spectrum.grad.contiguous())
    pixels = torch.fft.irfftn(grad, s=(param.size, param.size), norm="ortho")
    return pixels.flatten(1).norm(dim=1).detach().cpu().numpy()


def render_jobs(model: torch.nn.Module, spec: ModelSpec, jobs: list[Job],
                schedule: RenderSchedule, device: str = "cpu", seed: int = 0,
                progress: bool = False, on_step: Callable[[int], None] | None = None
                ) -> list[JobResult]:
    """Render all jobs, `schedule.max_batch` images per optimisation batch; `on_step(n)` hears
    of every step and, when a batch stops early, of the steps it did not need."""
    schedule.check_jobs(jobs)
    results: list[JobResult | None] = [None] * len(jobs)
    for chunk in _chunks(jobs, schedule.max_batch):
        for i, result in zip(chunk, _render_chunk(model, spec, [jobs[i] for i in chunk],
                                                  schedule, torch.device(device), seed, progress,
                                                  on_step or (lambda n: None))):
            results[i] = result
    return results  # type: ignore[return-value]


class _PlateauStop:
    """IMI's early stop per job: an EMA of the largest per-image norm of the spectrum gradient;
    once more than max(min_steps, window) steps have run and the mean of the window's first
    half over its second is <= `plateau`, the job is frozen (its parameters restored after
    every later step) and its weight zeroed."""

    def __init__(self, schedule: RenderSchedule, rows_of: list[list[int]], param: FourierImage,
                 device) -> None:
        self.schedule, self.rows_of, self.param, self.device = schedule, rows_of, param, device
        n_jobs, n_total = len(rows_of), param.spectrum.shape[0]
        self.on = schedule.min_steps < schedule.max_steps
        self.active = [True] * n_jobs
        self.steps = [schedule.max_steps] * n_jobs
        self.ema: list[float | None] = [None] * n_jobs
        self.history = [deque(maxlen=schedule.window) for _ in range(n_jobs)]
        self.frozen = torch.zeros(n_total, dtype=torch.bool, device=device)
        self.snapshot = param.spectrum.detach().clone()
        self.live = torch.ones(n_total, device=device)

    def restore(self) -> None:
        """Put the frozen jobs' parameters back after an optimiser step."""
        if bool(self.frozen.any()):
            with torch.no_grad():
                self.param.spectrum[self.frozen] = self.snapshot[self.frozen]

    def update(self, step: int, norms: np.ndarray | None) -> None:
        """Smooth this step's gradient norms and freeze the jobs that have plateaued."""
        s = self.schedule
        for j, rows in enumerate(self.rows_of):
            if not self.active[j] or norms is None:
                continue
            value = float(norms[rows].max())
            self.ema[j] = value if self.ema[j] is None else s.ema * self.ema[j] + (1 - s.ema) * value
            self.history[j].append(self.ema[j])
            if step > max(s.min_steps, s.window):  # IMI's test
                values = list(self.history[j])
                half = s.window // 2
                first, second = np.mean(values[:half]), np.mean(values[half:])
                if second > 0 and first / second <= s.plateau:
                    self._freeze(j, step)

    def _freeze(self, j: int, step: int) -> None:
        self.active[j] = False
        self.steps[j] = step
        index = torch.tensor(self.rows_of[j], device=self.device)
        self.frozen[index] = True
        self.live[index] = 0.0
        self.snapshot[index] = self.param.spectrum.detach()[index]


def job_rows(jobs: list[Job]) -> list[list[int]]:
    """Each job's rows in the optimised batch: the jobs' images one after another."""
    ends = np.cumsum([job.n for job in jobs]).tolist()
    return [list(range(end - job.n, end)) for job, end in zip(jobs, ends, strict=True)]


def _render_chunk(model, spec, jobs, schedule, device, seed, progress, on_step
                  ) -> list[JobResult]:
    rows_of = job_rows(jobs)
    n_total = sum(job.n for job in jobs)
    row_job = [j for j, rows in enumerate(rows_of) for _ in rows]
    layers = [jobs[j].layer for j in row_job]
    recorded = list(dict.fromkeys(
        layers + [layer for job in jobs if job.diverse for layer in job.gram_layers]))
    layouts = {layer: spec.layout(layer) for layer in recorded}
    weight = torch.tensor([jobs[j].sign / jobs[j].n for j in row_job], device=device,
                          dtype=torch.float32)
    # a job's forward pass holds the same images whatever shares its chunk, so its arithmetic
    # (kernels sum in a batch-size-dependent order) never depends on its chunk-mates
    passes = _forward_passes(jobs, rows_of, layouts, schedule, device)
    parts_of: dict[int, list[_Pass]] = {}  # a cut job's passes
    for one in passes:
        if one.first is not None:
            parts_of.setdefault(one.jobs[0], []).append(one)
    crop = schedule.size if spec.crop_view else None
    job_seeds = [seed * 1_000_003 + job.seed * 101 for job in jobs]  # initial spectra
    param = FourierImage(n_total, schedule.size + 2 * schedule.pad, seeds=job_seeds,
                         counts=[job.n for job in jobs], device=device)
    optimizer = torch.optim.Adam(param.parameters(), lr=schedule.lr)
    draws = StepDraws(seed)
    normalize = normalizer(spec, device)
    to_input = lambda x: model_input(x * 255.0, normalize, schedule.channels_last)
    stop = _PlateauStop(schedule, rows_of, param, device)
    acts = torch.zeros(n_total, device=device)

    bar = tqdm(total=schedule.max_steps, disable=not progress, desc=f"render {len(jobs)} jobs",
               unit="step", dynamic_ncols=True, leave=False)
    targets = [(j, job.target) for j, job in enumerate(jobs) if job.target]
    with memory_format(model, schedule.channels_last), \
            LayerRecorder(model, spec, recorded, keep="full") as recorder:
        for step in range(1, schedule.max_steps + 1):
            optimizer.zero_grad(set_to_none=True)
            draw, weighted = draws.next(), weight * stop.live
            view_of = functools.partial(_view, param, draw, crop, to_input)
            grams_of: dict[int, list[torch.Tensor]] = {}
            for one in passes:
                j, job_grams = one.jobs[0], None
                if one.first is not None and one.batch.diverse and stop.active[j]:
                    if j not in grams_of:  # the first part's rows: filled in by its own pass
                        grams_of[j] = _later_grams(model, recorder, parts_of[j], view_of,
                                                   jobs[j].n)
                    job_grams = grams_of[j]
                loss, acts[one.rows] = _step_loss(model, recorder, view_of(one.rows), one.batch,
                                                  weighted[one.rows],
                                                  [stop.active[j] for j in one.jobs], job_grams,
                                                  one.first or 0)
                loss.backward()
            norms = _gradient_norms(param) if stop.on else None
            optimizer.step()
            stop.restore()
            bar.update(1)
            on_step(1)
            if progress and (step % 25 == 0 or step == 1):
                bar.set_postfix_str(_progress_note(acts, rows_of, jobs, targets, stop.active))
            stop.update(step, norms)
            if not any(stop.active):
                on_step(schedule.max_steps - step)
                break
        bar.close()
        pixels, final_acts = _final_images(model, recorder, param, passes, layouts, schedule,
                                           to_input, n_total, device)
    return [JobResult(pixels[rows], final_acts[rows].astype(np.float64), stop.steps[j],
                      jobs[j].alpha) for j, rows in enumerate(rows_of)]


def _final_images(model, recorder, param: FourierImage, passes: list[_Pass], layouts,
                  schedule: RenderSchedule, to_input: Callable, n_total: int, device
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Every row's final image (uint8, centre crop) and its unit's activation on it."""
    final = torch.zeros(n_total, 3, schedule.size, schedule.size, device=device)
    final_acts = np.zeros(n_total)
    with torch.no_grad():
        for one in passes:
            images = center_crop(param(one.rows), schedule.size)
            final[one.rows] = images
            outputs = recorder(model, to_input(images))
            final_acts[one.rows] = unit_activations(
                outputs, layouts, one.batch.layers, one.batch.channels).cpu().numpy()
    pixels = (final.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return pixels, final_acts


@dataclass
class UnitVisualizations:
    """Max and min visualizations of one unit: non-diverse image, diverse images, search record."""

    layer: str
    channel: int
    results: dict[str, dict] = field(default_factory=dict)  # side -> {plain, diverse, alpha, beats}


@dataclass
class _Search:
    side: str
    unit: int
    target: float
    alpha: float
    lo: float | None = None
    hi: float | None = None
    phase: str = "exp"
    exponent: int = 0
    binary: int = 0
    best: JobResult | None = None
    done: bool = False
    tried: list = field(default_factory=list)


@dataclass(frozen=True)
class UnitTarget:
    """A unit to render, the natural activations its visualizations must beat and its key
    (its seeds: the same key renders the same images whatever group or shard it is in)."""

    layer: str
    channel: int
    top_natural: float  # the most activating natural exemplar's activation
    bottom_natural: float  # the least activating one's
    key: int


def render_units(model: torch.nn.Module, spec: ModelSpec, targets: list[UnitTarget],
                 schedule: RenderSchedule, search: DiversitySearch = DiversitySearch(),
                 device: str = "cpu", seed: int = 0, progress: bool = False,
                 checkpoint: str | Path | None = None,
                 on_step: Callable[[int], None] | None = None) -> list[UnitVisualizations]:
    """Non-diverse and diverse max/min visualizations for units, as IMI made them.

    The non-diverse image is the best of `search.n_plain` renders; the diverse images come
    from IMI's alpha search (`DiversitySearch`), strongest first.
    `checkpoint`: a file the search state is saved to after every round and resumed from.
    When no weight's diverse images beat the exemplars, the `n_diverse` strongest non-diverse
    renders are the diverse set (alpha 0, `fallback_non_diverse`), as IMI falls back.
    """
    units = [(t.layer, t.channel) for t in targets]
    keys = [t.key for t in targets]
    out = [UnitVisualizations(layer, channel) for layer, channel in units]
    searches = []
    for u, t in enumerate(targets):
        for side, target in (("max", t.top_natural), ("min", t.bottom_natural)):
            searches.append(_Search(side, u, float(target),
                                    search.alpha_start if search.alpha is None
                                    else float(search.alpha)))
    plain_jobs = [Job(units[s.unit][0], units[s.unit][1], 1 if s.side == "max" else -1,
                      search.n_plain, 0.0, seed=4 * keys[s.unit] + (s.side == "min"),
                      target=s.target)
                  for s in searches]
    round_index = 0
    saved = _load_round(checkpoint, units, keys)
    if saved is not None:
        round_index, searches, out = saved
    while True:
        pending = [s for s in searches if not s.done]
        if not pending:
            break
        if progress:
            alphas = sorted({s.alpha for s in pending})
            tqdm.write(f"alpha round {round_index + 1}: {len(pending)} searches, alpha "
                       f"{alphas[0]:g}..{alphas[-1]:g}", file=sys.stderr)
        jobs = [Job(units[s.unit][0], units[s.unit][1], 1 if s.side == "max" else -1,
                    search.n_diverse, s.alpha, seed=4 * keys[s.unit] + 2 + (s.side == "min"),
                    target=s.target, diversity_layers=search.layers)
                for s in pending]
        if round_index == 0:
            jobs = plain_jobs + jobs
        # IMI re-seeds every attempt alike: each alpha starts from the same noise and draws
        results = render_jobs(model, spec, jobs, schedule, device, seed, progress, on_step)
        if round_index == 0:
            for s, result in zip(searches, results[: len(plain_jobs)]):
                out[s.unit].results.setdefault(s.side, {}).update(
                    plain=_strongest_first(result, s.side, keep=1),
                    plain_all=_strongest_first(result, s.side),
                    plain_candidates=result.activations.tolist())
            results = results[len(plain_jobs):]
        for s, result in zip(pending, results):
            _advance(s, result, search.alpha is not None, search.max_exponent,
                     search.binary_steps)
        round_index += 1
        _save_round(checkpoint, units, keys, round_index, searches, out)
    for s in searches:
        record = out[s.unit].results.setdefault(s.side, {})
        plain = record.pop("plain_all", None) or record["plain"]  # (a checkpoint before it)
        # IMI: when no diversity weight beats the exemplars, the non-diverse renders stand in
        chosen = (_strongest_first(s.best, s.side) if s.best is not None else
                  _strongest_first(plain, s.side, keep=search.n_diverse))
        # `beats` is about the images shown: non-diverse stand-ins may beat the exemplars
        record.update(diverse=chosen, alpha=chosen.alpha,
                      beats=beats_target(s.side, chosen.activations, s.target),
                      fallback_non_diverse=s.best is None, target=s.target, tried=s.tried)
    return out


def _load_round(path: str | Path | None, units: list, keys: list[int]):
    """(next round, searches, results so far) saved for these units, or None."""
    if path is None or not Path(path).is_file():
        return None
    with open(path, "rb") as handle:
        state = pickle.load(handle)
    if state["units"] != [tuple(u) for u in units] or state["keys"] != keys:
        return None  # another group's or another run's state
    return state["round"], state["searches"], state["out"]


def _save_round(path: str | Path | None, units: list, keys: list[int], round_index: int,
                searches: list, out: list) -> None:
    if path is None:
        return
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    with open(tmp, "wb") as handle:
        pickle.dump({"units": [tuple(u) for u in units], "keys": keys, "round": round_index,
                     "searches": searches, "out": out}, handle)
    tmp.replace(target)


def _strongest_first(result: JobResult, side: str, keep: int | None = None) -> JobResult:
    """The result's images ordered from the strongest (highest max, lowest min); `keep` first."""
    order = np.argsort(-result.activations if side == "max" else result.activations,
                       kind="stable")[:keep]
    return JobResult(result.images[order], result.activations[order], result.steps, result.alpha)


def _advance(s: _Search, result: JobResult, fixed: bool, max_exponent: int,
             binary_steps: int) -> None:
    ok = beats_target(s.side, result.activations, s.target)
    s.tried.append([s.alpha, ok])
    if ok:
        s.best, s.lo = result, s.alpha
    else:
        s.hi = s.alpha
    if fixed:
        s.done = True
        return
    if s.phase == "exp":
        if ok and s.exponent < max_exponent:
            s.exponent += 1
            s.alpha *= 10.0
            return
        if ok:
            s.done = True
            return
        s.phase = "binary"
        if s.lo is None:
            s.lo = 0.0
    if s.binary >= binary_steps:
        s.done = True
        return
    s.binary += 1
    s.alpha = (s.lo + s.hi) / 2.0
