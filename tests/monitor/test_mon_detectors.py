"""Detector statistics by simulation with fixed seeds.

Criteria (standard normal, independent samples, known in-control mean/sigma):
- false alarms: alarms / in-control samples ≤ 1/500 over 3 seeds × 100 000 samples
  (the detector restarts after each alarm, so this is 1/ARL0);
- 1σ shift: after 50 in-control samples the mean shifts by +1σ (and, separately,
  −1σ); the delay to the first alarm is collected over 3 × 1000 trials. The median
  delay must be ≤ 10 samples; the mean must be ≤ 10 for CUSUM and ≤ 10.5 for EWMA
  (the theoretical edge at ARL0 ≥ 500; measured values are in the docstring of
  gpu_engine/monitor/detectors.py and in the report).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from gpu_engine.monitor.detectors import Cusum, Ewma, Holt, LinearTrend, RobustZ, RunningMoments

Detector = Cusum | Ewma


def _false_alarm_rate(make: Callable[[], Detector], seeds=(1, 2, 3), n=100_000) -> float:
    alarms = 0
    for seed in seeds:
        det = make()
        x = np.random.default_rng(seed).standard_normal(n)
        alarms += sum(det.update(float(v)) for v in x)
    return alarms / (n * len(seeds))


def _delays(make: Callable[[], Detector], shift: float, seeds, trials=1000, pre=50) -> np.ndarray:
    out = []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for _ in range(trials):
            det = make()
            if any(det.update(float(v)) for v in rng.standard_normal(pre)):
                continue  # a false alarm before the shift: not a detection-delay trial
            for i, v in enumerate(rng.standard_normal(300) + shift, 1):
                if det.update(float(v)):
                    out.append(i)
                    break
            else:
                out.append(300)
    return np.asarray(out)


CUSUM = lambda: Cusum(mean=0.0, sigma=1.0, reset_on_alarm=True)  # noqa: E731 (defaults under test)
EWMA = lambda: Ewma(mean=0.0, sigma=1.0, reset_on_alarm=True)  # noqa: E731


@pytest.mark.parametrize("make", [CUSUM, EWMA], ids=["cusum", "ewma"])
def test_false_alarms_at_most_one_in_500(make: Callable[[], Detector]) -> None:
    rate = _false_alarm_rate(make)
    assert rate <= 1 / 500, f"false alarm rate 1/{1 / rate:.0f}"
    assert rate > 1 / 5000, "a detector that never alarms would pass the line above"


@pytest.mark.parametrize(
    ("make", "mean_limit"), [(CUSUM, 10.0), (EWMA, 10.5)], ids=["cusum", "ewma"]
)
@pytest.mark.parametrize("shift", [1.0, -1.0])
def test_one_sigma_shift_caught_within_10_samples(
    make: Callable[[], Detector], mean_limit: float, shift: float
) -> None:
    d = _delays(make, shift, seeds=(11, 12, 13) if shift > 0 else (21, 22, 23))
    assert len(d) > 2550  # ≈ 50/ARL0 of the trials are lost to pre-shift false alarms
    assert np.median(d) <= 10, f"median delay {np.median(d)}"
    assert d.mean() <= mean_limit, f"mean delay {d.mean():.2f}"


def test_one_sided_cusum_ignores_the_other_direction() -> None:
    det = Cusum(mean=0.0, sigma=1.0, direction="up")
    assert not any(det.update(-3.0) for _ in range(100))
    assert any(det.update(3.0) for _ in range(5))


def test_warmup_estimates_the_baseline() -> None:
    rng = np.random.default_rng(3)
    det = Cusum(warmup=200)
    base = rng.normal(1000.0, 20.0, 200)
    assert not any(det.update(float(v)) for v in base)
    assert det.baseline.mean == pytest.approx(base.mean())
    assert det.baseline.sigma == pytest.approx(base.std(ddof=1))
    shifted = rng.normal(1040.0, 20.0, 40)  # +2σ
    assert any(det.update(float(v)) for v in shifted)


def test_constant_warmup_does_not_divide_by_zero() -> None:
    det = Ewma(warmup=10)
    for _ in range(10):
        det.update(5.0)
    assert not det.update(5.0)
    assert any(det.update(7.0) for _ in range(3))


def test_robust_z_flags_spikes_not_noise() -> None:
    rng = np.random.default_rng(5)
    det = RobustZ(window=60, threshold=5.0)
    noise = rng.normal(100.0, 5.0, 600)
    noise[[200, 400]] = [200.0, 10.0]  # one spike up, one down
    flagged = [i for i, v in enumerate(noise) if det.update(float(v))]
    assert flagged == [200, 400]


def test_robust_z_on_a_flat_series() -> None:
    det = RobustZ(window=20, min_samples=5)
    assert not any(det.update(3.0) for _ in range(20))
    assert det.update(4.0)


def test_linear_trend_relative_change_and_slope() -> None:
    tr = LinearTrend(window_s=60)
    for t in range(0, 61):
        tr.update(float(t), 1000.0 - 5.0 * t)  # falls 300 over 60 s = -30 %
    assert tr.slope() == pytest.approx(-5.0)
    assert tr.relative_change() == pytest.approx(-0.3)
    for t in range(61, 200):
        tr.update(float(t), 700.0)  # old points leave the window
    assert tr.relative_change() == pytest.approx(0.0, abs=1e-9)


def test_linear_trend_needs_enough_history() -> None:
    tr = LinearTrend(window_s=60, min_fill=0.8)
    for t in range(10):
        tr.update(float(t), float(t))
    assert np.isnan(tr.relative_change())


def test_holt_follows_a_noisy_decline() -> None:
    rng = np.random.default_rng(9)
    h = Holt(alpha=0.2, beta=0.05, window_s=60)
    slopes = []
    for t in range(300):
        h.update(float(t), 1000.0 - 2.0 * t + rng.normal(0, 20))
        if t >= 100:
            slopes.append(h.slope())
    assert np.mean(slopes) == pytest.approx(-2.0, rel=0.05)  # unbiased on a linear trend
    assert np.std(slopes) < 0.5  # and smoothed: raw differences have std 20·√2 ≈ 28
    assert h.relative_change() < -0.15


def test_running_moments_merge_equals_one_pass() -> None:
    x = np.random.default_rng(1).normal(3.0, 2.0, 1000)
    a, b, whole = RunningMoments(), RunningMoments(), RunningMoments()
    for v in x[:300]:
        a.update(float(v))
    for v in x[300:]:
        b.update(float(v))
    for v in x:
        whole.update(float(v))
    merged = a.merge(b)
    assert merged.n == 1000
    assert merged.mean == pytest.approx(whole.mean)
    assert merged.std == pytest.approx(x.std(ddof=1))
