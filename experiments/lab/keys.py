"""Response keys: the task type's mapping, and key sources (psychtoolbox, falling back to pyglet).

The mapping is the task type's `response_keys`, as on the web page; for a choice between two
images (upper query = a, lower = b):
    1 2 3  ->  a very / fairly / not sure     8 9 0  ->  b very / fairly / not sure
(confidence 3 / 2 / 1); between three, 1 2 3 / 4 5 6 / 7 8 9 (experiments.tasks.choice). The numeric keypad works the same (num_1 ... num_0). Space or Return
continues; Escape saves and aborts. Timestamps are seconds on psychopy.logging.defaultClock, the clock of flip times.
psychopy is imported inside the sources only.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from experiments.tasks import get_task
from experiments.tasks.choice import CONFIDENCE_LABELS
from experiments.tasks.registry import DEFAULT_TASK

CONTINUE_KEYS = ("space", "return", "num_enter")
ABORT_KEY = "escape"


@lru_cache
def response_keys(task_type: str = DEFAULT_TASK) -> dict[str, tuple[str, int]]:
    """Key name -> (choice, confidence) of the task type (its keypad twins included)."""
    mapping = {key: (choice, confidence)
               for choice, keys in get_task(task_type).response_keys.items()
               for key, (confidence, _) in zip(keys, CONFIDENCE_LABELS, strict=True)}
    mapping.update({f"num_{k}": v for k, v in list(mapping.items()) if k.isdigit()})
    return mapping


@lru_cache
def key_for(task_type: str = DEFAULT_TASK) -> dict[tuple[str, int], str]:
    """(choice, confidence) -> the key that gives it."""
    return {v: k for k, v in response_keys(task_type).items() if not k.startswith("num_")}


def decode(name: str, task_type: str = DEFAULT_TASK) -> tuple[str, int] | None:
    """(choice, confidence) of a response key of the task type, or None."""
    return response_keys(task_type).get(name.lower().replace("[", "num_").rstrip("]"))


@dataclass(frozen=True)
class KeyEvent:
    """One key press: its name and time (defaultClock seconds)."""

    name: str
    t: float


class EventKeys:
    """pyglet key events through psychopy.event (the fallback; times are dispatch times)."""

    backend = "pyglet"

    def __init__(self) -> None:
        from psychopy import event, logging
        self._event, self._clock = event, logging.defaultClock

    def clear(self) -> None:
        self._event.clearEvents("keyboard")

    def poll(self) -> list[KeyEvent]:
        return [KeyEvent(str(name).lower(), float(t))
                for name, t in self._event.getKeys(timeStamped=self._clock)]

    def expect(self, context: str, payload: object = None) -> None:
        """What the runner waits for next (used by emulated sources only)."""


class PtbKeys:
    """The psychtoolbox keyboard backend: hardware-queue timestamps, independent of frames."""

    backend = "psychtoolbox"

    def __init__(self) -> None:
        from psychopy.hardware import keyboard
        self._kb = keyboard.Keyboard(backend="ptb")
        if self._kb.getBackend() != "ptb":
            raise RuntimeError(f"keyboard backend is {self._kb.getBackend()!r}, not ptb")

    def clear(self) -> None:
        self._kb.clearEvents()

    def poll(self) -> list[KeyEvent]:
        return [KeyEvent(str(k.name).lower(), float(k.tDown))
                for k in self._kb.getKeys(waitRelease=False)]

    def expect(self, context: str, payload: object = None) -> None:
        """What the runner waits for next (used by emulated sources only)."""


def open_keys(preferred: str = "auto") -> tuple[EventKeys | PtbKeys, str]:
    """A key source: psychtoolbox unless unavailable or `preferred` is pyglet; and why."""
    if preferred not in ("auto", "psychtoolbox", "pyglet"):
        raise ValueError(f"unknown keyboard backend {preferred!r}")
    if preferred == "pyglet":
        return EventKeys(), "pyglet requested"
    try:
        return PtbKeys(), "psychtoolbox"
    except Exception as exc:  # noqa: BLE001 - psychtoolbox missing, libjack/portaudio missing, no HID access
        if preferred == "psychtoolbox":
            from experiments.errors import InterpsyError
            raise InterpsyError(f"psychtoolbox keyboard unavailable: {exc}") from None
        return EventKeys(), f"psychtoolbox unavailable ({type(exc).__name__}: {exc}); pyglet"


Script = Callable[[str, object], "str | None"]


class EmulatedKeys(EventKeys):
    """Presses keys through psychopy.event._onPygletKey as a script says (tests, piloting).

    `script(context, payload)` returns the key to press for what the runner waits for
    (context 'trial' with the Step, 'continue' with the screen name), or None for none; the
    key is pressed `delay_s` after the runner starts waiting.
    """

    backend = "pyglet-emulated"

    def __init__(self, script: Script, delay_s: float = 0.05) -> None:
        super().__init__()
        self.script = script
        self.delay_s = delay_s
        self._pending: str | None = None
        self._since = 0.0
        self.pressed: list[str] = []

    def expect(self, context: str, payload: object = None) -> None:
        self._pending = self.script(context, payload)
        self._since = self._clock.getTime()

    def poll(self) -> list[KeyEvent]:
        if self._pending is not None and self._clock.getTime() - self._since >= self.delay_s:
            self._event._onPygletKey(self._pending, 0, emulated=True)
            self.pressed.append(self._pending)
            self._pending = None
        return super().poll()


PILOTS = ("correct", "wrong", "random")


def pilot_script(how: str, seed: str = "", task_type: str = DEFAULT_TASK) -> Script:
    """Keys for piloting a study without a person: `correct` (the answer key, confidences in
    turn), `wrong` (the next option: the practice is failed), `random` (seeded by `seed`), or
    a file of keys, one per line (`space` continues, `8`/`1`... answer, `#` comments; when it
    runs out the session is aborted with Escape and resumes from there)."""
    if how in PILOTS:
        rng = random.Random(f"pilot:{seed}")
        options = list(get_task(task_type).response_keys)

        own = getattr(get_task(task_type).lab_module(), "pilot_key", None)

        def press(context: str, payload: object) -> str | None:
            if context != "trial":
                return "space"
            if own is not None:  # a type that presents its own trial picks its own key
                return own(how, payload, rng)
            right = payload.trial.answer_key
            wrong = options[(options.index(right) + 1) % len(options)]
            choice = {"correct": right, "wrong": wrong, "random": rng.choice(options)}[how]
            return key_for(task_type)[(choice, 1 + payload.trial_index % 3)]
        return press
    path = Path(how)
    if not path.is_file():
        from experiments.errors import InterpsyError
        raise InterpsyError(f"--script {how}: neither one of {', '.join(PILOTS)} nor a file "
                            f"of keys")
    keys = iter([line.split("#")[0].strip() for line in path.read_text().splitlines()
                 if line.split("#")[0].strip()])
    return lambda context, payload: next(keys, "escape")
