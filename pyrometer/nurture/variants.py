"""Subject-line tests: split leads between variants, report, and pick a winner.

The stated rule: once every variant has at least ``min_sends`` sends, the variant with the
best open rate wins when a two-sided two-proportion z-test against each other variant is
significant at 95% (|z| ≥ 1.96). Until then the split stays even.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True, slots=True)
class Tally:
    sends: int
    opens: int

    @property
    def rate(self) -> float:
        return self.opens / self.sends if self.sends else 0.0

    def interval(self, z: float = Z95) -> tuple[float, float]:
        """Wilson score interval of the open rate (95% by default)."""
        n = self.sends
        if n == 0:
            return (0.0, 1.0)
        p = self.rate
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        # At 0 and at 1 the bound is exactly the rate; rounding must not move it inside.
        low = 0.0 if self.opens == 0 else max(0.0, min(p, centre - half))
        high = 1.0 if self.opens >= n else min(1.0, max(p, centre + half))
        return (low, high)


def z_score(a: Tally, b: Tally) -> float:
    """Two-proportion z statistic (pooled), ``a`` minus ``b``; 0 when undefined."""
    if a.sends == 0 or b.sends == 0:
        return 0.0
    pooled = (a.opens + b.opens) / (a.sends + b.sends)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.sends + 1 / b.sends))
    return 0.0 if se == 0 else (a.rate - b.rate) / se


def winner(tallies: Sequence[Tally], min_sends: int) -> int | None:
    """The index of the variant that won, or ``None`` while the test runs."""
    if len(tallies) < 2 or any(t.sends < min_sends for t in tallies):
        return None
    best = max(range(len(tallies)), key=lambda i: tallies[i].rate)
    others = [t for i, t in enumerate(tallies) if i != best]
    if all(z_score(tallies[best], other) >= Z95 for other in others):
        return best
    return None


def choose(variants: int, won: int | None, draw: float) -> int:
    """The variant for the next send: the winner once there is one, else a fair draw
    (``draw`` uniform in [0, 1))."""
    if won is not None:
        return won
    return min(int(draw * variants), variants - 1)
