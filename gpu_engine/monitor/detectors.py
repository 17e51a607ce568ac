"""Streaming change and anomaly detectors: one ``update(x)`` per sample, O(1) state.

All are plain Python/numpy objects so the monitor can keep one per rule and
series. Shift detectors standardise with a known in-control ``mean``/``sigma``
or, if not given, estimate them from the first ``warmup`` samples (then freeze
them, so a slow shift is not absorbed into the baseline).

Parameter choice (standard normal, independent samples, measured by
``tests/monitor/test_mon_detectors.py``, 3 seeds): two-sided CUSUM k=0.5,
h=5.1 gives ARL0≈550 and flags a 1σ shift after 9.9 samples on average
(median 9); EWMA λ=0.1, L=2.85 gives ARL0≈575 and 10.3 samples (median 9).
Both sit at the theoretical edge: no chart reaches ARL0 ≥ 500 with a mean 1σ
delay far below 10.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["both", "up", "down"]


@dataclass
class RunningMoments:
    """Welford mean/variance; ``merge`` combines two partial results (Chan et al.)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def update(self, x: float) -> None:
        self.n += 1
        d = x - self.mean
        self.mean += d / self.n
        self.m2 += d * (x - self.mean)

    def merge(self, other: RunningMoments) -> RunningMoments:
        n = self.n + other.n
        if n == 0:
            return RunningMoments()
        d = other.mean - self.mean
        mean = self.mean + d * other.n / n
        m2 = self.m2 + other.m2 + d * d * self.n * other.n / n
        return RunningMoments(n, mean, m2)

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


class _Baseline:
    """Known or warm-up-estimated in-control mean and sigma."""

    def __init__(self, mean: float | None, sigma: float | None, warmup: int) -> None:
        self.mean = mean
        self.sigma = sigma
        self.warmup = warmup
        self.moments = RunningMoments()

    @property
    def ready(self) -> bool:
        return self.mean is not None and self.sigma is not None

    def learn(self, x: float) -> bool:
        """Feed a warm-up sample; True once the baseline is usable."""
        if self.ready:
            return True
        self.moments.update(x)
        if self.moments.n >= self.warmup:
            m = self.moments.mean
            # A flat warm-up (sigma 0) would make any change infinite; floor it.
            floor = max(1e-3 * abs(m), 1e-12)
            if self.mean is None:
                self.mean = m
            if self.sigma is None:
                self.sigma = max(self.moments.std, floor)
        return False

    def z(self, x: float) -> float:
        assert self.mean is not None and self.sigma is not None
        return (x - self.mean) / self.sigma


class Cusum:
    """Tabular (Page) CUSUM on standardised values: ``S+ = max(0, S+ + z - k)``, alarm at ``S > h``.

    ``reset_on_alarm`` restarts the sums after each alarm (the textbook ARL
    setting); without it the sums stay high while a shift persists, which is
    what an alert wants.
    """

    def __init__(
        self,
        k: float = 0.5,
        h: float = 5.1,
        *,
        mean: float | None = None,
        sigma: float | None = None,
        warmup: int = 30,
        direction: Direction = "both",
        reset_on_alarm: bool = False,
    ) -> None:
        self.k, self.h = k, h
        self.direction = direction
        self.reset_on_alarm = reset_on_alarm
        self.baseline = _Baseline(mean, sigma, warmup)
        self.upper = 0.0
        self.lower = 0.0

    @property
    def statistic(self) -> float:
        """The larger one-sided sum, in units of sigma."""
        return max(self.upper, self.lower)

    def reset(self) -> None:
        self.upper = self.lower = 0.0

    def update(self, x: float) -> bool:
        if not self.baseline.ready and not self.baseline.learn(x):
            return False
        z = self.baseline.z(x)
        if self.direction != "down":
            self.upper = max(0.0, self.upper + z - self.k)
        if self.direction != "up":
            self.lower = max(0.0, self.lower - z - self.k)
        alarm = self.upper > self.h or self.lower > self.h
        if alarm and self.reset_on_alarm:
            self.reset()
        return alarm


class Ewma:
    """EWMA control chart with exact (time-varying) limits ``L·σ·sqrt(λ/(2-λ)(1-(1-λ)^2t))``."""

    def __init__(
        self,
        lambda_: float = 0.1,
        L: float = 2.85,
        *,
        mean: float | None = None,
        sigma: float | None = None,
        warmup: int = 30,
        direction: Direction = "both",
        reset_on_alarm: bool = False,
    ) -> None:
        if not 0 < lambda_ <= 1:
            raise ValueError("lambda must be in (0, 1]")
        self.lam, self.L = lambda_, L
        self.direction = direction
        self.reset_on_alarm = reset_on_alarm
        self.baseline = _Baseline(mean, sigma, warmup)
        self.z = 0.0
        self.t = 0
        self._decay = 1.0  # (1-λ)^(2t)

    @property
    def statistic(self) -> float:
        """Current EWMA over its control limit (alarm above 1)."""
        return abs(self.z) / self.limit if self.t else 0.0

    @property
    def limit(self) -> float:
        lam = self.lam
        return self.L * math.sqrt(lam / (2 - lam) * (1 - self._decay))

    def reset(self) -> None:
        self.z, self.t, self._decay = 0.0, 0, 1.0

    def update(self, x: float) -> bool:
        if not self.baseline.ready and not self.baseline.learn(x):
            return False
        self.t += 1
        self._decay *= (1 - self.lam) ** 2
        self.z = self.lam * self.baseline.z(x) + (1 - self.lam) * self.z
        limit = self.limit
        alarm = (self.direction != "down" and self.z > limit) or (
            self.direction != "up" and self.z < -limit
        )
        if alarm and self.reset_on_alarm:
            self.reset()
        return alarm


class RobustZ:
    """Spike detector: robust z = (x - median) / (1.4826·MAD) over a rolling window.

    Median/MAD ignore the spikes they look for, unlike mean/std. The value is
    compared with the window *before* it is added. With MAD 0 (a flat series)
    the mean absolute deviation stands in, and a change from a constant is infinite.
    """

    def __init__(
        self,
        window: int = 60,
        threshold: float = 3.5,
        *,
        min_samples: int = 10,
        direction: Direction = "both",
    ) -> None:
        self.window: deque[float] = deque(maxlen=window)
        self.threshold = threshold
        self.min_samples = min_samples
        self.direction = direction
        self.last_z = 0.0

    @property
    def statistic(self) -> float:
        return abs(self.last_z)

    def score(self, x: float) -> float:
        if len(self.window) < self.min_samples:
            return 0.0
        arr = np.fromiter(self.window, dtype=float, count=len(self.window))
        med = float(np.median(arr))
        dev = np.abs(arr - med)
        scale = 1.4826 * float(np.median(dev))
        if scale == 0.0:
            scale = 1.2533 * float(dev.mean())
        if scale == 0.0:
            return 0.0 if x == med else math.copysign(math.inf, x - med)
        return (x - med) / scale

    def update(self, x: float) -> bool:
        z = self.score(x)
        self.window.append(x)
        self.last_z = z
        if self.direction == "up":
            return z > self.threshold
        if self.direction == "down":
            return z < -self.threshold
        return abs(z) > self.threshold


class LinearTrend:
    """Least-squares line over the samples of the last ``window_s`` seconds.

    ``slope`` is units per second; ``relative_change`` is the fitted end minus
    the fitted start of the window over the fitted start (−0.3 = fell 30 %).
    Running sums (times taken relative to a recent origin, re-based now and
    then for precision) make each update O(1) amortised.
    """

    def __init__(self, window_s: float, min_fill: float = 0.8) -> None:
        self.window_s = window_s
        self.min_fill = min_fill
        self.points: deque[tuple[float, float]] = deque()
        self._origin: float | None = None
        self._st = self._sx = self._stt = self._stx = 0.0

    def _add(self, t: float, x: float, sign: float) -> None:
        assert self._origin is not None
        u = t - self._origin
        self._st += sign * u
        self._sx += sign * x
        self._stt += sign * u * u
        self._stx += sign * u * x

    def _rebase(self) -> None:
        self._origin = self.points[0][0] if self.points else None
        self._st = self._sx = self._stt = self._stx = 0.0
        for t, x in self.points:
            self._add(t, x, 1.0)

    def update(self, t: float, x: float) -> None:
        if self._origin is None:
            self._origin = t
        self.points.append((t, x))
        self._add(t, x, 1.0)
        while self.points and self.points[0][0] < t - self.window_s:
            old_t, old_x = self.points.popleft()
            self._add(old_t, old_x, -1.0)
        if t - self._origin > 10 * self.window_s:
            self._rebase()

    @property
    def ready(self) -> bool:
        if len(self.points) < 3:
            return False
        return self.points[-1][0] - self.points[0][0] >= self.min_fill * self.window_s

    def _fit(self) -> tuple[float, float]:
        """(slope, fitted value at the origin)."""
        n = len(self.points)
        mean_t, mean_x = self._st / n, self._sx / n
        var_t = self._stt / n - mean_t * mean_t
        if var_t <= 1e-12 * max(1.0, mean_t * mean_t):
            return 0.0, mean_x
        slope = (self._stx / n - mean_t * mean_x) / var_t
        return slope, mean_x - slope * mean_t

    def slope(self) -> float:
        return self._fit()[0] if self.ready else math.nan

    def relative_change(self) -> float:
        if not self.ready or self._origin is None:
            return math.nan
        slope, intercept = self._fit()
        start = intercept + slope * (self.points[0][0] - self._origin)
        end = intercept + slope * (self.points[-1][0] - self._origin)
        if start == 0:
            return 0.0 if end == 0 else math.copysign(math.inf, end)
        return (end - start) / abs(start)


class Holt:
    """Holt's double exponential smoothing: a level and a per-second trend.

    It reacts to a change sooner than :class:`LinearTrend`'s fit over the window, but
    its trend is a smoothed one-step difference, so it is noisier: on a steady rate with
    10 % noise, the defaults' trend times 30 s swung past -30 %. Use small ``alpha``
    and ``beta`` on noisy series. ``slope`` is the smoothed trend; ``relative_change``
    is the trend times the window over the window's start (the level minus that).
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.3, window_s: float = 60.0) -> None:
        self.alpha, self.beta, self.window_s = alpha, beta, window_s
        self.level: float | None = None
        self.trend = 0.0
        self.last_t: float | None = None
        self.first_t: float | None = None
        self.n = 0

    def update(self, t: float, x: float) -> None:
        self.n += 1
        if self.level is None or self.last_t is None:
            self.level, self.last_t, self.first_t = x, t, t
            return
        dt = t - self.last_t
        if dt <= 0:
            return
        prev = self.level
        self.level = self.alpha * x + (1 - self.alpha) * (prev + self.trend * dt)
        self.trend = self.beta * (self.level - prev) / dt + (1 - self.beta) * self.trend
        self.last_t = t

    @property
    def ready(self) -> bool:
        return (
            self.n >= 3
            and self.first_t is not None
            and self.last_t is not None
            and self.last_t - self.first_t >= 0.5 * self.window_s
        )

    def slope(self) -> float:
        return self.trend if self.ready else math.nan

    def relative_change(self) -> float:
        if not self.ready or self.level is None:
            return math.nan
        change = self.trend * self.window_s
        start = self.level - change
        if start == 0:
            return 0.0 if change == 0 else math.copysign(math.inf, change)
        return change / abs(start)
