"""The batch-fill wait is (b-1)/(2λ) on average and p·(b-1)/λ at quantile p.

Why: the model charged b/(2λ), so a batch of one waited half an inter-arrival time;
at 1 event/s that is 500 ms, and a problem any single worker meets was called
infeasible. The oracles here share no code with the model: Erlang C from scipy's
Poisson distribution, exhaustive search, and simulated arrivals.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from gpu_engine.cli import main as gpu_engine_main
from gpu_engine.optimizer.model import ProblemBatch, evaluate, predict, stage_latency
from gpu_engine.optimizer.problem import Problem, Stage

P3 = "arrival_rate: 1\nbudget: 2\nsla: 50ms\nstages: [{name: v, a: 0.001, c: 0.000002}]\n"


def _erlang_c(k: np.ndarray, load: np.ndarray) -> np.ndarray:
    """P(wait) of M/M/k from Erlang B = pmf(k; A) / cdf(k; A) (scipy)."""
    bl = stats.poisson.pmf(k, load) / stats.poisson.cdf(k, load)
    return k * bl / (k - load * (1 - bl))


def _queue_and_service(lam: float, a: float, c: float, w: np.ndarray, b: np.ndarray):
    """Mean wait + service, and its p99 counterpart, of an M/M/w queue of batches."""
    s = a + c * b
    load = lam * s / b
    with np.errstate(all="ignore"):
        cw = _erlang_c(w, load)
        mean = np.where(load < w, cw * s / (w - load) + s, np.inf)
        q99 = np.where(cw > 0.01, s * np.log(cw / 0.01) / (w - load), 0.0)
    return mean, np.where(load < w, q99 + s, np.inf)


def test_low_rate_problem_is_feasible_with_batches_of_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p3.yaml").write_text(P3)
    rc = gpu_engine_main(["optimize", "--problem", str(tmp_path / "p3.yaml")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["feasible"], out["reason"]
    # exhaustive oracle over every worker count and batch size in the bounds
    w = np.arange(1, 65)[:, None]
    b = np.arange(1, 65537)[None, :].astype(float)
    lat, _ = _queue_and_service(1.0, 0.001, 2e-6, w, b)
    lat = lat + (b - 1) / 2.0
    best = lat.min(axis=1)
    wv = w[:, 0].astype(float)
    ok = (best <= 0.05) & (0.05 * wv <= 2.0)
    obj = 0.4 * best / 0.05 + 0.3 * 0.05 * wv / 2.0 + 0.3 * 0.01**wv
    assert out["objective"] == pytest.approx(obj[ok].min(), rel=1e-9)
    assert out["stages"][0]["batch"] == 1
    assert out["latency_s"] == pytest.approx(best[out["stages"][0]["workers"] - 1], rel=1e-12)


def test_fill_wait_matches_simulated_poisson_arrivals() -> None:
    lam, b, w = 1000.0, 8, 2
    p = Problem(arrival_rate=lam, budget=2, sla=50, stages=[Stage(name="s", a=1e-4, c=1e-5)])  # type: ignore[arg-type]
    queue, _ = _queue_and_service(lam, 1e-4, 1e-5, np.array(w), np.array(float(b)))
    model_fill = predict(p, [w], [b]).latency_s - float(queue)
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.exponential(1 / lam, 80_000 * b)).reshape(-1, b)
    simulated = float((t[:, -1:] - t).mean())  # each event waits for its batch's last
    assert simulated == pytest.approx((b - 1) / (2 * lam), rel=0.01)
    assert model_fill == pytest.approx(simulated, rel=0.01)


@pytest.mark.parametrize("b", [1, 100])
def test_p99_adds_the_fill_quantile_of_steady_arrivals(b: int) -> None:
    lam, w = 5000.0, 3
    p = Problem(arrival_rate=lam, budget=2, sla=50, stages=[Stage(name="s", a=2e-4, c=1e-5)])  # type: ignore[arg-type]
    _, q99 = _queue_and_service(lam, 2e-4, 1e-5, np.array(w), np.array(float(b)))
    waits = np.arange(b)[::-1] / lam  # the i-th of b evenly spaced events waits (b-1-i)/λ
    expected = float(q99) + float(np.quantile(waits, 0.99))
    assert predict(p, [w], [b]).latency_p99_s == pytest.approx(expected, rel=1e-9)


def test_torch_model_agrees_and_stays_differentiable() -> None:
    lam = 2_000.0
    p = Problem(
        arrival_rate=lam, budget=2, sla=50,  # type: ignore[arg-type]
        stages=[Stage(name="x", a=3e-4, c=2e-6), Stage(name="y", a=1e-4, c=5e-6)],
    )  # fmt: skip
    batch = ProblemBatch.from_problems([p], device="cpu")
    for wv, bv in (([2, 3], [1, 1]), ([2, 3], [40, 7]), ([4, 2], [300, 16])):
        w = torch.tensor([wv], dtype=torch.float64)
        b = torch.tensor([bv], dtype=torch.float64)
        lat = float(evaluate(batch, w, b).latency[0])
        expected = 0.0  # every stage stable here (load < w), where the models coincide
        for st, wi, bi in zip(p.stages, wv, bv, strict=True):
            mean, _ = _queue_and_service(lam, st.a, st.c, np.array(wi), np.array(float(bi)))
            expected += float(mean) + (bi - 1) / (2 * lam)
        assert lat == pytest.approx(expected, rel=1e-12)
    w = torch.tensor([[3.3, 4.6]], dtype=torch.float64)
    b = torch.tensor([[35.0, 12.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda bb: stage_latency(batch, w, bb), (b,))
