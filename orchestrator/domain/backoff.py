"""Restart delays: exponential with jitter, 1 s up to 60 s. Pure.

The delays are drawn here and handed to ``pusher_failed.lua`` as a table; the script picks
the entry for the attempt number it counts atomically, so every replica agrees on it. The
formula is tenacity's ``wait_exponential_jitter``: ``initial * 2 ** (attempt - 1)`` plus a
uniform jitter, capped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

TABLE_SIZE = 12


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    jitter_seconds: float = 1.0
    stable_seconds: float = 60.0

    def delay_seconds(self, attempt: int) -> float:
        """The delay before restart attempt ``attempt`` (1, 2, ...)."""
        jitter = random.uniform(0, self.jitter_seconds)
        try:
            grown = self.initial_seconds * 2.0 ** (attempt - 1) + jitter
        except OverflowError:
            grown = self.max_seconds
        return max(0.0, min(grown, self.max_seconds))

    def delays_ms(self) -> list[int]:
        """Delay before restart attempt 1, 2, ... ``TABLE_SIZE`` (the last one repeats)."""
        return [round(self.delay_seconds(n) * 1000) for n in range(1, TABLE_SIZE + 1)]
