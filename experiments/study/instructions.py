"""The instruction pages every session shows, web and lab alike: the study's own pages for the
participant's condition, then the built-in ones (the task unless the study explains it, how to
answer with buttons and keys, the button lock, the practice criterion)."""
from __future__ import annotations

import re
from typing import Any, Literal

from experiments.tasks.registry import DEFAULT_TASK, get_task

Client = Literal["web", "lab"]

CONTINUE = {"web": "press <b>Continue</b> (or Enter)",
            "lab": "press the <b>space bar</b> (or click)"}


# What a session says between its blocks, web and lab alike: (title, text, button). `{n}` and
# `{pass_mark}` are the session's; `{correct}` the attempt's right answers, filled where shown.
BLOCK_MESSAGES: dict[str, tuple[str, str, str]] = {
    "practice-passed": ("Practice passed", "Well done! Now the main part starts. It works "
                        "exactly like the practice, and a counter shows how many of your "
                        "answers were right.", "Start the main part"),
    "practice-failed": ("Please repeat the practice", "You answered {correct} of {n} practice "
                        "trials correctly; {pass_mark} are needed. Look carefully at the "
                        "examples on the right and try again.", "Repeat the practice"),
}


def block_messages(n_practice: int, pass_mark: int) -> dict[str, dict[str, str]]:
    """BLOCK_MESSAGES with the session's numbers filled in (`{correct}` is left)."""
    return {key: {"title": title, "button": button,
                  "text": text.replace("{n}", str(n_practice)).replace("{pass_mark}",
                                                                        str(pass_mark))}
            for key, (title, text, button) in BLOCK_MESSAGES.items()}


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f}".rstrip("0").rstrip(".")


def built_in_pages(has_own_pages: bool, button_lock_ms: int, n_practice: int, pass_mark: int,
                   max_attempts: int, client: Client = "web", task_type: str = DEFAULT_TASK
                   ) -> list[dict[str, Any]]:
    """The built-in pages (HTML text; `example` marks where a page shows example references);
    the task's own page is the task type's `task_page`."""
    pages: list[dict[str, Any]] = []
    if not has_own_pages:
        pages.append({"title": "Your task", "example": True,
                      "text": get_task(task_type).task_page})
    pages.append({"title": "How to answer", "example": has_own_pages, "text":
                  get_task(task_type).how_to_answer() +
                  f"<p>The buttons unlock after {_seconds(button_lock_ms)} seconds, so "
                  "that you look at the images first. After your answer you see whether it was "
                  f"right; then {CONTINUE[client]}. Take the time you need; there is no "
                  "deadline.</p>"})
    if n_practice:
        needed = f"all {n_practice}" if pass_mark == n_practice else \
            f"at least {pass_mark} of {n_practice}"
        limit = (f" (at most {max_attempts} attempts in all; after that the study ends)"
                 if max_attempts else "")
        pages.append({"title": "Practice first", "example": False, "text":
                      f"<p>You start with {n_practice} practice trials. To continue to the main "
                      f"part you need to answer {needed} correctly; otherwise you repeat the "
                      f"practice, with the trials in a new order{limit}. In the main part a "
                      f"counter shows how many answers you got right.</p>"})
    return pages


def session_pages(own: list[dict[str, Any]], condition: str, button_lock_ms: int,
                  n_practice: int, pass_mark: int, max_attempts: int,
                  client: Client = "web", task_type: str = DEFAULT_TASK) -> list[dict[str, Any]]:
    """The pages one session shows: the study's pages for `condition`, then the built-in ones."""
    chosen = [p for p in own if not p.get("conditions") or condition in p["conditions"]]
    return [*chosen, *built_in_pages(bool(chosen), button_lock_ms, n_practice, pass_mark,
                                     max_attempts, client, task_type)]


def plain_text(html: str) -> str:
    """Page text for a screen without HTML: tags removed, paragraphs (a blank line, <p>, <br>)
    kept, the line breaks inside a paragraph (from the TOML file) reflowed."""
    text = re.sub(r"<\s*br\s*/?>|</p>", "\n\n", html, flags=re.IGNORECASE)
    text = re.sub(r"<[^>]+>", "", text)
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return "\n\n".join(p for p in paragraphs if p)
