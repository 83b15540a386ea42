"""Statistics of before/after timings (used by `retracer compare`).

Everything here works on plain lists of positive numbers (seconds, or ns), one
number per *round* (a fresh process), and is pure Python (``random`` and
``statistics`` only), so it runs anywhere retracer runs.

- :func:`summarize`: min, median, mean, quartiles, IQR, stdev and a robust
  coefficient of variation (IQR / 1.349 / median: the stdev a normal sample with
  this IQR would have, relative to the median; one disturbed round does not
  inflate it).
- :func:`bootstrap_ratio_ci`: the ratio of medians ``median(base) / median(head)``
  (above 1: HEAD is faster) and its percentile bootstrap interval, resampling the
  two sides independently.
- :func:`paired_ratio_ci`: the same question asked of the rounds in pairs (the
  i-th round of each side, run next to each other): the median of the per-pair
  ratios and its bootstrap interval over pairs. Slow drift of the machine (other
  load coming and going) moves both rounds of a pair, so it cancels.
- :func:`mann_whitney_u`: the two-sided Mann-Whitney U test (exact distribution
  for small samples without ties, else the normal approximation with tie and
  continuity corrections). It needs at least 5 rounds per side to ever reach
  p < 0.01 (5 against 5, perfectly separated: p = 2/252 = 0.0079).
- :func:`rounds_needed`: rounds per side to detect an effect at a given noise,
  2 (z_a/2 + z_b)^2 (CV / effect)^2 (two-sided alpha 0.01, power 0.8: the test the
  verdict uses).
- :func:`compare_samples`: all of the above and the verdict: ``faster`` or
  ``slower`` only when the interval excludes 1, p < ``alpha`` and the speedup is
  beyond ``min_effect``; otherwise ``same``.
"""
from __future__ import annotations

import math
import random
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["Summary", "Comparison", "summarize", "ratio_of_medians", "bootstrap_ratio_ci", "paired_ratio_ci",
           "mann_whitney_u", "rounds_needed", "decide", "compare_samples", "holm"]

#: the verdict's significance level
ALPHA = 0.01
#: bootstrap resamples
RESAMPLES = 2000


@dataclass(frozen=True)
class Summary:
    """One side's rounds."""

    rounds: int
    min: float
    median: float
    mean: float
    q1: float
    q3: float
    iqr: float
    stdev: float
    max: float
    cv: float           # robust: IQR / 1.349 / median

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)


def summarize(xs: Sequence[float]) -> Summary:
    """Min, median, mean, quartiles (inclusive method), IQR, stdev, robust CV."""
    xs = [float(x) for x in xs]
    if not xs:
        raise ValueError("no rounds")
    if len(xs) == 1:
        x = xs[0]
        return Summary(1, x, x, x, x, x, 0.0, 0.0, x, 0.0)
    q1, med, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    iqr = q3 - q1
    cv = (iqr / 1.349) / med if med > 0 else 0.0
    return Summary(len(xs), min(xs), med, statistics.fmean(xs), q1, q3, iqr, statistics.stdev(xs), max(xs), cv)


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    h = n // 2
    return s[h] if n % 2 else (s[h - 1] + s[h]) / 2.0


def _percentiles(values: List[float], level: float) -> Tuple[float, float]:
    values.sort()
    n = len(values)
    a = (1.0 - level) / 2.0

    def at(q: float) -> float:  # linear interpolation between order statistics
        pos = q * (n - 1)
        i = int(math.floor(pos))
        j = min(i + 1, n - 1)
        return values[i] + (values[j] - values[i]) * (pos - i)

    return at(a), at(1.0 - a)


def ratio_of_medians(base: Sequence[float], head: Sequence[float]) -> float:
    """median(base) / median(head): above 1 means HEAD takes less time."""
    mh = _median(head)
    return _median(base) / mh if mh > 0 else math.inf


def bootstrap_ratio_ci(base: Sequence[float], head: Sequence[float], level: float = 0.95,
                       resamples: int = RESAMPLES, seed: int = 0) -> Tuple[float, float]:
    """Percentile bootstrap interval of median(base) / median(head), the two sides
    resampled independently. Deterministic for a given ``seed``."""
    if not base or not head:
        raise ValueError("no rounds")
    rng = random.Random(seed)
    nb, nh = len(base), len(head)
    out: List[float] = []
    for _ in range(resamples):
        mh = _median(rng.choices(head, k=nh))
        mb = _median(rng.choices(base, k=nb))
        out.append(mb / mh if mh > 0 else math.inf)
    return _percentiles(out, level)


def paired_ratio_ci(base: Sequence[float], head: Sequence[float], level: float = 0.95,
                    resamples: int = RESAMPLES, seed: int = 1) -> Tuple[float, Tuple[float, float]]:
    """(median of base[i] / head[i], its percentile bootstrap interval over the
    pairs). The pairs are the rounds in the order they ran; unequal lengths use
    the common prefix."""
    n = min(len(base), len(head))
    if n == 0:
        raise ValueError("no rounds")
    ratios = [b / h if h > 0 else math.inf for b, h in zip(base[:n], head[:n])]
    est = _median(ratios)
    if n == 1:
        return est, (est, est)
    rng = random.Random(seed)
    out = [_median(rng.choices(ratios, k=n)) for _ in range(resamples)]
    return est, _percentiles(out, level)


def _ranks(values: Sequence[float]) -> Tuple[List[float], List[int]]:
    """Mid-ranks (1-based) and the sizes of the groups of ties."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties: List[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        r = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = r
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def _u_distribution(n1: int, n2: int) -> List[int]:
    """Counts of every value 0..n1*n2 of U under the null hypothesis: the
    coefficients of the Gaussian binomial [n1+n2 choose n1]_q."""
    m = n1 * n2
    poly = [0] * (m + 1)
    poly[0] = 1
    for i in range(1, n1 + 1):
        # multiply by (1 - q^(n2+i)) ...
        k = n2 + i
        for d in range(m, k - 1, -1):
            poly[d] -= poly[d - k]
        # ... and divide by (1 - q^i): a running sum with stride i (exact)
        for d in range(i, m + 1):
            poly[d] += poly[d - i]
    return poly


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> Tuple[float, float]:
    """(U of ``a``, two-sided p-value) of the Mann-Whitney U test.

    Exact when there are no ties and n1 * n2 <= 400; otherwise the normal
    approximation with the tie correction of the variance and a continuity
    correction of 0.5."""
    n1, n2 = len(a), len(b)
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    ranks, ties = _ranks(list(a) + list(b))
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2.0
    if not ties and n1 * n2 <= 400:
        counts = _u_distribution(n1, n2)
        total = sum(counts)
        u = int(round(u1))
        lower = sum(counts[:u + 1]) / total
        upper = sum(counts[u:]) / total
        return u1, min(1.0, 2.0 * min(lower, upper))
    n = n1 + n2
    mu = n1 * n2 / 2.0
    tie_term = sum(t ** 3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var <= 0:
        return u1, 1.0
    z = (abs(u1 - mu) - 0.5) / math.sqrt(var)
    if z <= 0:
        return u1, 1.0
    return u1, min(1.0, math.erfc(z / math.sqrt(2.0)))


def _z(p: float) -> float:
    return statistics.NormalDist().inv_cdf(p)


def rounds_needed(cv: float, effect: float, alpha: float = ALPHA, power: float = 0.8) -> int:
    """Rounds per side to detect a relative ``effect`` (0.05: 5%) when one round
    varies by ``cv`` (relative): 2 (z_{1-alpha/2} + z_power)^2 (cv / effect)^2,
    at least 5 (below that the U test cannot reach p < 0.01)."""
    if effect <= 0:
        raise ValueError("effect must be positive")
    n = 2.0 * (_z(1 - alpha / 2) + _z(power)) ** 2 * (cv / effect) ** 2
    return max(5, int(math.ceil(n)))


def decide(speedup: float, ci: Tuple[float, float], p: float, min_effect: float, alpha: float = ALPHA) -> str:
    """``faster`` / ``slower`` when the interval excludes 1, p < alpha and the
    speedup is beyond ``min_effect`` (relative, both directions); else ``same``."""
    lo, hi = ci
    if p >= alpha:
        return "same"
    if lo > 1.0 and speedup > 1.0 + min_effect:
        return "faster"
    if hi < 1.0 and speedup > 0 and 1.0 / speedup > 1.0 + min_effect:
        return "slower"
    return "same"


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm-Bonferroni adjusted p-values (for many functions tested at once)."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adj = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adj[i] = running
    return adj


@dataclass(frozen=True)
class Comparison:
    """Base against head: the speedup, its intervals, the test and the verdict."""

    speedup: float                       # median(base) / median(head)
    ci: Tuple[float, float]              # bootstrap 95% interval of the speedup
    paired_speedup: Optional[float]      # median of per-pair ratios
    paired_ci: Optional[Tuple[float, float]]
    p: float                             # two-sided Mann-Whitney U
    verdict: str                         # faster | slower | same
    base: Summary
    head: Summary
    min_effect: float

    @property
    def cv(self) -> float:
        """The noise of one round: the larger robust CV of the two sides."""
        return max(self.base.cv, self.head.cv)

    @property
    def narrow(self) -> bool:
        """The interval is narrower than the smallest effect that matters."""
        lo, hi = self.ci
        return lo > 0 and hi / lo <= 1.0 + self.min_effect

    @property
    def clear(self) -> bool:
        """The interval lies wholly beyond the min-effect band and p < alpha / 10:
        more rounds would not change the verdict."""
        lo, hi = self.ci
        band = 1.0 + self.min_effect
        return self.p < ALPHA / 10 and (lo > band or (hi > 0 and hi < 1.0 / band))

    def to_json(self) -> Dict[str, Any]:
        return {
            "speedup": self.speedup, "ci": list(self.ci), "p": self.p, "verdict": self.verdict,
            "paired": ({"speedup": self.paired_speedup, "ci": list(self.paired_ci)}
                       if self.paired_ci is not None else None),
            "base": self.base.to_json(), "head": self.head.to_json(),
        }


def compare_samples(base: Sequence[float], head: Sequence[float], min_effect: float = 0.02,
                    alpha: float = ALPHA, paired: bool = True, resamples: int = RESAMPLES) -> Comparison:
    """Everything about base against head (times: lower is better)."""
    sb, sh = summarize(base), summarize(head)
    speedup = ratio_of_medians(base, head)
    ci = bootstrap_ratio_ci(base, head, resamples=resamples)
    pe: Optional[float] = None
    pci: Optional[Tuple[float, float]] = None
    if paired and min(len(base), len(head)) >= 2:
        pe, pci = paired_ratio_ci(base, head, resamples=resamples)
    _, p = mann_whitney_u(base, head)
    return Comparison(speedup, ci, pe, pci, p, decide(speedup, ci, p, min_effect, alpha), sb, sh, min_effect)
