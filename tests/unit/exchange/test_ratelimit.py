"""RateLimiter: token bucket per key with a fake clock."""

from __future__ import annotations

from services.exchange.http.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_the_limit_then_refills_continuously() -> None:
    clock = Clock()
    rl = RateLimiter(60, clock=clock, wall=clock)
    decisions = [rl.check("k") for _ in range(61)]
    assert all(d.allowed for d in decisions[:60]) and not decisions[60].allowed
    assert decisions[0].remaining == 59 and decisions[59].remaining == 0
    assert decisions[60].reset_epoch > clock.t
    assert rl.rejected == 1
    clock.t += 1.0  # 60/min = one token per second
    assert rl.check("k").allowed and not rl.check("k").allowed


def test_keys_are_independent_and_zero_disables() -> None:
    clock = Clock()
    rl = RateLimiter(1, clock=clock, wall=clock)
    assert rl.check("a").allowed and not rl.check("a").allowed and rl.check("b").allowed
    off = RateLimiter(0, clock=clock, wall=clock)
    assert all(off.check("a").allowed for _ in range(1000))
