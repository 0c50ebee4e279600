"""The practice block's order: the designed order first, each repetition shuffled anew.

One definition for the session service, the web page (sent with the state), the lab and
simulated participants: slot `i` of attempt `a` shows practice trial `practice_order(...)[i]`.
"""
from __future__ import annotations

import hashlib
import random


def practice_order(session_id: str, attempt: int, n: int) -> list[int]:
    """Positions of the practice trials in attempt `attempt`: 0 as designed, each later attempt
    a shuffle seeded by the session and the attempt (the same wherever computed) that differs
    from the attempt before it."""
    order = list(range(n))
    if n < 2:
        return order
    for a in range(1, attempt + 1):
        seed = int.from_bytes(hashlib.sha256(f"{session_id}:{a}".encode()).digest()[:8], "big")
        rng = random.Random(seed)
        previous, order = order, list(order)
        while order == previous:
            rng.shuffle(order)
    return order


def practice_position(session_id: str, trial_index: int, n: int) -> int:
    """Which practice trial running index `trial_index` shows (before the main block)."""
    return practice_order(session_id, trial_index // n, n)[trial_index % n]
