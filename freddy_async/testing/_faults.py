"""Misbehaviour on purpose: the per-organization token bucket and the seeded fault plan."""

from __future__ import annotations

import hashlib
import math
import random
from freddy_async import _clock
from collections.abc import Callable
from dataclasses import dataclass, fields

__all__ = ["FaultCounts", "Plan", "TokenBucket", "plan_attempt"]


@dataclass
class FaultCounts:
    """How many answers of each kind of injected fault the server has given."""

    fail_first: int = 0
    """503 answers given by ``fail_first``."""
    error_500: int = 0
    """500 answers (JSON envelope) drawn by ``error_rate``."""
    error_502: int = 0
    """502 answers with an HTML body, as a proxy sends them."""
    error_503: int = 0
    """503 answers drawn by ``error_rate`` (JSON or empty body)."""
    dropped: int = 0
    """Connections closed without any answer."""
    truncated: int = 0
    """200 answers cut short of their declared Content-Length."""
    slow: int = 0
    """Answers held back by ``slow_delay``."""

    @property
    def total(self) -> int:
        """All injected faults together (slow answers included)."""
        return sum(getattr(self, f.name) for f in fields(self))

    def reset(self) -> None:
        """Set every count back to zero."""
        for f in fields(self):
            setattr(self, f.name, 0)


@dataclass(frozen=True)
class Plan:
    """What one attempt of one request is going to suffer."""

    fail_first: bool = False
    drop: bool = False
    error_status: int | None = None
    error_variant: float = 0.0
    truncate: bool = False
    truncate_share: float = 0.5
    slow: bool = False


def plan_attempt(
    *,
    seed: int,
    request_key: str,
    attempt: int,
    fail_first: int,
    error_rate: float,
    drop_rate: float,
    truncate_rate: float,
    slow_rate: float,
) -> Plan:
    """Decide the faults of attempt number ``attempt`` (from 0) of ``request_key``.

    The draw depends only on (seed, request, attempt), never on arrival order, so a run with
    concurrent requests repeats exactly.
    """
    if attempt < fail_first:
        return Plan(fail_first=True)
    digest = hashlib.sha256(f"fault\x1f{seed}\x1f{request_key}\x1f{attempt}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:16], "big"))
    # Always draw every number, so that changing one rate does not reshuffle the others.
    drop, error, kind, variant, truncate, share, slow = (rng.random() for _ in range(7))
    if drop < drop_rate:
        return Plan(drop=True)
    if error < error_rate:
        return Plan(error_status=(500, 502, 503)[int(kind * 3)], error_variant=variant)
    return Plan(
        truncate=truncate < truncate_rate,
        truncate_share=0.1 + 0.8 * share,
        slow=slow < slow_rate,
    )


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``capacity`` held."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def take(self) -> bool:
        """Take one token if there is one; return whether it was taken."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    @property
    def remaining(self) -> int:
        """Whole tokens left now."""
        self._refill()
        return math.floor(self._tokens)

    def retry_after(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate)

    def reset_epoch(self) -> int:
        """Wall-clock epoch second at which the bucket will be full again."""
        self._refill()
        return math.ceil(_clock.wall() + (self.capacity - self._tokens) / self.rate)
