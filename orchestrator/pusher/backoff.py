"""Restart delays: exponential with jitter, 1 s up to 60 s, from tenacity's own strategy.

The delays are drawn here and handed to ``pusher_failed.lua`` as a table; the script picks
the entry for the attempt number it counts atomically, so every replica agrees on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential_jitter

TABLE_SIZE = 12


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    jitter_seconds: float = 1.0
    stable_seconds: float = 60.0

    def delays_ms(self) -> list[int]:
        """Delay before restart attempt 1, 2, ... ``TABLE_SIZE`` (the last one repeats)."""
        wait = wait_exponential_jitter(
            multiplier=self.initial_seconds, max=self.max_seconds, jitter=self.jitter_seconds
        )
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        delays = []
        for attempt in range(1, TABLE_SIZE + 1):
            state.attempt_number = attempt
            delays.append(round(min(wait(state), self.max_seconds) * 1000))
        return delays
