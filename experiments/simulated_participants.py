"""Simulated participants that take part through the real HTTP flow (entry, consent, API).

An attentive observer answers from the model's own activations of the queries (two, or as
many as the task type's options) plus Gaussian noise (its "perceptual" noise, scaled per condition); on units whose mechanism is known (the
calibration units) its sensitivity follows their construction instead; a careless one answers
at random and skips the instructions; on categorisation trials it knows each image's category
and how severe its distortion is (`Observer.categorise`). Used by `interpsy demo --simulate N`
and for testing a deployment end to end.
"""
from __future__ import annotations

import json
import math
import random
import re
import statistics
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

ENTRY_FIELD = re.compile(r'name="entry" value="([^"]+)"')
FRAGMENT = re.compile(r"#s=([0-9a-f]+)&t=([^&]+)")
# Observer noise in units of the activation spread of the unit's images, per condition.
NOISE = {"natural": 1.0, "mixed": 1.5, "synthetic": 2.0, "none": 6.0}
# Calibration units: the mixing knob m at which a simulated participant's accuracy has fallen
# halfway to chance (the resolution `interpsy analyze` should recover), per explanation type;
# natural exemplars show both of a mixture's features, a visualization mostly one.
PLANTED_M50 = {"natural": 0.6, "synthetic": 0.35, "mixed": 0.5}
PLANTED_WIDTH, PLANTED_LAPSE = 0.08, 0.04
# Categorisation: the spread (logit scale) of how easy each image is, shared by every simulated
# participant, so that their errors agree beyond chance (error consistency above 0); and the
# display's frame period the simulated page reports.
CATEGORY_ITEM_SD, FRAME_MS = 1.5, 1000 / 60


def construction_p_correct(conditions: list[str]) -> dict[tuple[str, str], float]:
    """P(correct) of an attentive simulated participant on each calibration unit and condition,
    from its construction: a detector 1 - lapse, a random control chance, a mixture at knob m
    the psychometric function at the planted resolution, the planted shortcut like a detector
    from natural exemplars and at chance from its visualizations (they show the shortcut)."""
    from analysis.calibration import CHANCE, psychometric_p
    from experiments.study.calibration_units import calibration_units

    known = {}
    for unit in calibration_units():
        for condition in conditions:
            m50 = PLANTED_M50.get(condition)
            if m50 is None or unit.kind == "control" or (
                    unit.kind == "shortcut" and condition != "natural"):
                p = CHANCE
            else:
                p = float(psychometric_p(unit.mixing or 0.0, m50, PLANTED_WIDTH, PLANTED_LAPSE))
            known[unit.unit_id, condition] = p
    return known


def _confidence(margin: float) -> int:
    """The confidence button (1..3) for evidence `margin` noise units away from a tie."""
    return 1 if margin < 0.7 else 2 if margin < 1.8 else 3


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


@dataclass
class Observer:
    """How one simulated participant behaves."""

    careless: bool = False
    noise_scale: float = 1.0
    instruction_s: float = 30.0
    rt_median_ms: float = 2500.0
    seed: int = 0
    known: dict[tuple[str, str], float] = field(default_factory=dict)  # (unit_id, condition)
    rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def choose(self, trial: dict[str, Any], options: list[dict[str, Any]],
               activation: dict[str, float], spread: dict[str, float], condition: str,
               unit_of: dict[str, str], attend: bool = False) -> tuple[str, int]:
        """Choice (one of `options`, the task type's words: option and image field) and
        confidence (1..3) for one trial (`attend`: even if careless)."""
        if self.careless and not attend:
            return self.rng.choice([o["option"] for o in options]), self.rng.randint(1, 3)
        images = {o["option"]: trial["stimulus"][o["field"]] for o in options}
        unit = unit_of.get(next(iter(images.values())), "")
        p_known = self.known.get((unit, condition))
        if p_known is not None:
            ranked = sorted(images, key=lambda o: -activation.get(images[o], 0.0))
            return self._choose_known(ranked, p_known)
        scale = spread.get(unit, 1.0) * NOISE.get(condition, 1.0) * self.noise_scale
        # Queries carry the activation for the unit; the one seeming highest is the max one.
        seen = {o: activation.get(i, 0.0) + self.rng.gauss(0, scale) for o, i in images.items()}
        first, second = sorted(seen.values(), reverse=True)[:2]
        return max(seen, key=seen.__getitem__), _confidence((first - second) / (scale or 1.0))

    def _choose_known(self, ranked: list[str], p_correct: float) -> tuple[str, int]:
        """Signal detection at the sensitivity that gives `p_correct`: evidence ~ N(d, 1) for
        the right query (`ranked[0]`), d = probit(p_correct); a wrong answer picks one of the
        others; confidence from the evidence's size."""
        d = statistics.NormalDist().inv_cdf(min(max(p_correct, 1e-6), 1 - 1e-6))
        evidence = self.rng.gauss(d, 1.0)
        choice = ranked[0] if evidence > 0 else (
            ranked[1] if len(ranked) == 2 else self.rng.choice(ranked[1:]))
        return choice, _confidence(abs(evidence))

    def categorise(self, trial: dict[str, Any], truth: dict[str, tuple[str, float]],
                   attend: bool = False) -> str:
        """The category chosen for a categorisation trial, knowing each image's category and
        severity (0: the distortion's mildest level, 1: its hardest): right with probability
        chance + (1 - chance)(1 - lapse) sigmoid(2.5 - 5 severity x noise scale + the image's
        own ease, the same for every participant), else one of the other categories."""
        categories = trial["stimulus"]["categories"]
        if self.careless and not attend:
            return self.rng.choice(categories)
        category, severity = truth[trial["stimulus"]["image"]]
        ease = random.Random(trial["stimulus"]["image"]).gauss(0, CATEGORY_ITEM_SD)
        seen = 1 / (1 + math.exp(-(2.5 - 5 * severity * self.noise_scale + ease)))
        chance = 1 / len(categories)
        if self.rng.random() < chance + (1 - chance) * (1 - PLANTED_LAPSE) * seen:
            return category
        return self.rng.choice([c for c in categories if c != category])

    def rt_ms(self) -> float:
        return self.rt_median_ms * math.exp(self.rng.gauss(0, 0.4))


class HttpParticipant:
    """Drives one participant through a running interpsy server over HTTP."""

    def __init__(self, base_url: str, experiment: str, platform_id: str, observer: Observer,
                 activation: dict[str, float], spread: dict[str, float], unit_of: dict[str, str],
                 timeout: float = 30.0, categories: dict[str, tuple[str, float]] | None = None):
        self.base = base_url.rstrip("/")
        self.experiment = experiment
        self.platform_id = platform_id
        self.observer = observer
        self.activation, self.spread, self.unit_of = activation, spread, unit_of
        self.categories = categories or {}  # categorisation: image -> (category, severity)
        self.timeout = timeout
        self.session_id = ""
        self.token = ""

    def _request(self, method: str, path: str, body: dict | None = None, form: dict | None = None
                 ) -> tuple[int, dict[str, str], bytes]:
        headers = {"User-Agent": "interpsy-simulated-participant"}
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
        if form is not None:
            data = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        for attempt in range(6):
            try:
                with _opener.open(request, timeout=self.timeout) as response:
                    return response.status, dict(response.headers), response.read()
            except urllib.error.HTTPError as exc:
                if exc.code in (502, 503, 429) and attempt < 5:
                    time.sleep(0.2 * 2 ** attempt)
                    continue
                return exc.code, dict(exc.headers), exc.read()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if attempt == 5:
                    raise
                time.sleep(0.2 * 2 ** attempt)
        raise RuntimeError("unreachable")

    def _api(self, method: str, path: str, body: dict | None = None) -> dict:
        status, _, payload = self._request(method, f"/api/sessions/{self.session_id}{path}", body)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: HTTP {status}: {payload[:300]!r}")
        return json.loads(payload)

    def enter(self) -> bool:
        """Open the Prolific-style link and give consent; False when the study refuses."""
        query = urllib.parse.urlencode({"PROLIFIC_PID": self.platform_id, "STUDY_ID": "demo",
                                        "SESSION_ID": f"s-{self.platform_id}"})
        status, headers, page = self._request("GET", f"/x/{self.experiment}/?{query}")
        if status == 303:  # the platform ids leave the address bar
            status, _, page = self._request("GET", headers.get("Location", ""))
        match = ENTRY_FIELD.search(page.decode())
        if status != 200 or not match:
            raise RuntimeError(f"entry page answered HTTP {status}")
        form = {"entry": match.group(1), "consent": "yes", "screen_width": 1920,
                "screen_height": 1080, "window_width": 1600, "window_height": 900,
                "device_pixel_ratio": 1, "touch": "0", "website": ""}
        status, headers, _ = self._request("POST", f"/x/{self.experiment}/start", form=form)
        if status != 303:
            return False
        found = FRAGMENT.search(urllib.parse.unquote(headers.get("Location", "")))
        if not found:
            raise RuntimeError("no session in the start redirect")
        self.session_id, self.token = found.group(1), found.group(2)
        return True

    def _answer(self, trial: dict[str, Any], state: dict[str, Any], attend: bool
                ) -> dict[str, Any]:
        """The answer to one trial as the type's page would send it."""
        stimulus = trial["stimulus"]
        if "categories" in stimulus:  # categorisation: the category and the frames shown
            from experiments.tasks.categorisation import planned_frames

            frames = {part: n for part, n in planned_frames(stimulus, FRAME_MS).items()
                      if part != "fixation"}
            return {"choice": self.observer.categorise(trial, self.categories, attend),
                    **{f"{part}_frames": n for part, n in frames.items()},
                    **{f"{part}_ms": n * FRAME_MS for part, n in frames.items()},
                    "frame_ms": FRAME_MS}
        choice, confidence = self.observer.choose(
            trial, state["words"]["options"], self.activation, self.spread, state["condition"],
            self.unit_of, attend)
        return {"choice": choice, "confidence": confidence}

    def run(self) -> dict[str, Any]:
        """Enter, read instructions, pass practice, answer the main block, complete."""
        if not self.enter():
            return {"participant": self.platform_id, "status": "refused"}
        state = self._api("GET", "")
        self._api("POST", "/instructions", {"seconds": self.observer.instruction_s})
        clock, step = 1000.0, state["next"]
        while step is not None:  # the server says which trial comes next (experiments.study.progress)
            phase, index = step["phase"], step["trial_index"]
            trial = state[phase][step["position"]]
            # Careless people too attend half the time in practice (its feedback teaches them).
            attend = phase == "practice" and self.observer.rng.random() < 0.5
            answer = self._answer(trial, state, attend)
            rt = self.observer.rt_ms()
            status, _, payload = self._request(
                "POST", f"/api/sessions/{self.session_id}/responses", {
                    "trial_index": index, "trial_id": trial["trial_id"],
                    "answer": answer, "rt_ms": rt,
                    "stim_onset_ms": clock, "response_ms": clock + rt,
                    "extra": {"simulated": True}})
            clock += rt + 2000.0
            if status == 409 and "expected_trial_index" in json.loads(payload):
                # as the page does: reload (e.g. a reservation ended by a rush of sign-ups
                # moved the session to a new task) and go on where the server says
                state = self._api("GET", "")
                step = state["next"]
                continue
            if status == 403 and json.loads(payload).get("reason") == "full":
                # others answered first while this one was still before its first answer
                return {"participant": self.platform_id, "status": "refused"}
            if status >= 400:
                raise RuntimeError(f"POST /responses: HTTP {status}: {payload[:300]!r}")
            step = json.loads(payload)["next_step"]
        done = self._api("POST", "/complete", {"feedback": "simulated participant"})
        return {"participant": self.platform_id, "status": done["status"],
                "completion_code": done["completion_code"], "careless": self.observer.careless}
