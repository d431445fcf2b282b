"""Per-device token buckets, in memory.

Threat: one device (a stolen laptop, a runaway integration) exhausting the gateway for
every other unit. The buckets live in this process: with N instances behind the proxy
a device gets up to N × the rate. That is accepted (the proxy in deploy/ also limits per
client address); a shared limiter would add a database write to every request.
"""

from __future__ import annotations

from dataclasses import dataclass

_MAX_BUCKETS = 10_000  # bound memory: idle full buckets are dropped beyond this


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate = rate_per_s
        self._burst = float(burst)
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self._rate > 0 and self._burst > 0

    def allow(self, key: str, now: float) -> bool:
        """Take one token for ``key`` at monotonic time ``now``; False when empty."""
        if not self.enabled:
            return True
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self._burst, now)
        elapsed = max(0.0, now - bucket.stamp)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def has_token(self, key: str, now: float) -> bool:
        """Whether ``allow`` would succeed now, without taking a token."""
        bucket = self._buckets.get(key)
        if not self.enabled or bucket is None:
            return True
        return bucket.tokens + max(0.0, now - bucket.stamp) * self._rate >= 1.0

    def _prune(self, now: float) -> None:
        full_after = self._burst / self._rate
        for key in [k for k, b in self._buckets.items() if now - b.stamp >= full_after]:
            del self._buckets[key]
