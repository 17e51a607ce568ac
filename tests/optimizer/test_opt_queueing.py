"""Erlang B/C maths against exact rational arithmetic, closed forms, scipy and simulation."""

from __future__ import annotations

from fractions import Fraction
from math import factorial

import numpy as np
import pytest
import torch
from scipy import stats

from gpu_engine.optimizer.queueing import (
    erlang_b,
    erlang_b_torch,
    erlang_c,
    erlang_c_torch,
    mean_wait,
    wait_quantile,
)


def exact_erlang_c(k: int, a: Fraction) -> Fraction:
    """Textbook formula, in exact rationals: C = (A^k/k!·k/(k−A)) / (Σ_{j<k} A^j/j! + that)."""
    top = a**k / factorial(k) * Fraction(k) / (k - a)
    return top / (sum(a**j / factorial(j) for j in range(k)) + top)


def test_known_table_value_two_erlangs_three_servers() -> None:
    # The classic worked example: A = 2 Erlangs on 3 servers waits with probability 4/9.
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9, rel=1e-14)


@pytest.mark.parametrize("rho", [0.05, 0.3, 0.7, 0.95, 0.999])
def test_closed_forms_mm1_mm2(rho: float) -> None:
    # M/M/1: P(wait) = ρ, Wq = ρ·s/(1−ρ).  M/M/2 (ρ = A/2): P(wait) = 2ρ²/(1+ρ).
    assert erlang_c(1, rho) == pytest.approx(rho, rel=1e-13)
    assert mean_wait(1, rho, 2.0) == pytest.approx(rho * 2.0 / (1 - rho), rel=1e-12)
    assert erlang_c(2, 2 * rho) == pytest.approx(2 * rho**2 / (1 + rho), rel=1e-12)


def test_against_exact_rationals() -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        k = int(rng.integers(1, 40))
        a = Fraction(int(rng.integers(1, 1000 * k)), 1000)  # 0 < A < k
        assert float(erlang_c(k, float(a))) == pytest.approx(float(exact_erlang_c(k, a)), rel=1e-12)


def test_erlang_b_matches_poisson_ratio_from_scipy_for_large_systems() -> None:
    # B(k, A) = P(Poisson(A) = k) / P(Poisson(A) ≤ k); the recursion must not overflow.
    k = np.array([50, 200, 1000, 4000, 64, 64])
    a = np.array([45.0, 150.0, 990.0, 3900.0, 0.01, 63.9])
    ref = stats.poisson.pmf(k, a) / stats.poisson.cdf(k, a)
    np.testing.assert_allclose(erlang_b(k, a), ref, rtol=1e-9)


def test_unstable_queue_is_infinite_and_always_waits() -> None:
    assert erlang_c(3, 3.0) == 1.0
    assert np.isinf(mean_wait(3, 3.5, 1.0))
    assert np.isinf(wait_quantile(2, 2.0, 1.0))


def test_torch_matches_numpy_batched_and_gradient_is_exact() -> None:
    rng = np.random.default_rng(5)
    k = rng.integers(1, 65, size=(7, 9))
    a = rng.random((7, 9)) * (k - 0.01)
    kt = torch.tensor(k, dtype=torch.float64)
    at = torch.tensor(a, dtype=torch.float64, requires_grad=True)
    np.testing.assert_allclose(erlang_b_torch(kt, at).detach().numpy(), erlang_b(k, a), rtol=1e-13)
    np.testing.assert_allclose(erlang_c_torch(kt, at).detach().numpy(), erlang_c(k, a), rtol=1e-12)
    flat_k = kt.reshape(-1)[:12]
    flat_a = at.detach().reshape(-1)[:12].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: erlang_b_torch(flat_k, x), (flat_a,))
    assert torch.autograd.gradcheck(lambda x: erlang_c_torch(flat_k, x), (flat_a,))


def _simulate_mmc(k: int, lam: float, service: float, n: int, seed: int) -> np.ndarray:
    """Waiting times of FCFS M/M/k by the Kiefer–Wolfowitz workload recursion."""
    rng = np.random.default_rng(seed)
    inter = rng.exponential(1 / lam, n)
    serv = rng.exponential(service, n)
    free = np.zeros(k)  # time until each server is free, sorted
    waits = np.empty(n)
    for i in range(n):
        free = np.maximum(free - inter[i], 0.0)
        waits[i] = free[0]
        free[0] += serv[i]
        free.sort()
    return waits


def test_mean_wait_and_p99_against_simulation() -> None:
    k, service, load = 4, 0.01, 3.2
    waits = _simulate_mmc(k, load / service, service, 300_000, seed=11)[20_000:]
    assert waits.mean() == pytest.approx(float(mean_wait(k, load, service)), rel=0.06)
    assert np.quantile(waits, 0.99) == pytest.approx(
        float(wait_quantile(k, load, service, 0.99)), rel=0.06
    )
    assert np.mean(waits > 0) == pytest.approx(float(erlang_c(k, load)), rel=0.03)
