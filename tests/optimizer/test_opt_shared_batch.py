"""The one batch size a running engine applies to every stage, against a brute-force
oracle written here from the M/M/w formulas (scipy's Poisson for Erlang B)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import poisson

from gpu_engine.optimizer.problem import Problem, Stage
from gpu_engine.optimizer.shared_batch import best_shared_batch


def _oracle_latency(problem: Problem, workers: list[int], batch: float) -> float:
    """Mean latency of the pipeline with ``batch`` rows at every stage: the fill wait,
    the Erlang C queueing delay and the service time, summed over the stages."""
    lam = problem.arrival_rate
    total = 0.0
    for stage, w in zip(problem.stages, workers, strict=True):
        service = stage.a + stage.c * batch
        load = lam * service / batch
        if load >= w:
            return float("inf")
        blocked = poisson.pmf(w, load) / poisson.cdf(w, load)
        waiting = w * blocked / (w - load * (1 - blocked))
        total += (batch - 1) / (2 * lam) + waiting * service / (w - load) + service
    return total


def _problem(rng: np.random.Generator, stages: int, high: int) -> Problem:
    return Problem(
        arrival_rate=float(rng.uniform(1e3, 5e4)),
        budget=100.0,
        sla=int(rng.integers(5, 200)),
        stages=[
            Stage(
                name=f"s{i}",
                a=float(rng.uniform(1e-5, 5e-3)),
                c=float(rng.uniform(1e-8, 2e-5)),
                batch=(int(rng.integers(1, 50)), high),
            )
            for i in range(stages)
        ],
    )


def test_the_shared_batch_is_the_brute_force_optimum_on_random_problems() -> None:
    rng = np.random.default_rng(7)
    found = none = 0
    for _ in range(40):
        problem = _problem(rng, int(rng.integers(1, 4)), int(rng.integers(60, 600)))
        workers = [int(w) for w in rng.integers(1, 6, size=len(problem.stages))]
        low = max(s.batch[0] for s in problem.stages)
        high = min(s.batch[1] for s in problem.stages)
        latency = {b: _oracle_latency(problem, workers, b) for b in range(low, high + 1)}
        meets = {b: x for b, x in latency.items() if x <= problem.sla_s}
        got = best_shared_batch(problem, workers)
        if not meets:
            assert got is None
            none += 1
            continue
        found += 1
        assert got is not None
        assert latency[got.batch] == pytest.approx(min(meets.values()), rel=1e-9)
        assert got.prediction.latency_s == pytest.approx(latency[got.batch], rel=1e-9)
        assert got.prediction.stable and got.max_delay_s == got.batch / problem.arrival_rate
    assert found > 10 and none > 0  # both outcomes were exercised


def test_a_range_past_the_exhaustive_search_finds_the_same_optimum() -> None:
    """Bounds up to 2^31 - 1: a log grid, then every size around its best point."""
    rng = np.random.default_rng(3)
    compared = 0
    for _ in range(8):
        problem = _problem(rng, 3, 2**31 - 1)
        workers = [4, 4, 4]
        got = best_shared_batch(problem, workers)
        small = problem.model_copy(
            update={
                "stages": [
                    s.model_copy(update={"batch": (s.batch[0], 1 << 16)}) for s in problem.stages
                ]
            }
        )
        reference = best_shared_batch(small, workers)  # searched one by one
        if reference is None:
            continue
        assert got is not None
        assert got.prediction.latency_s <= reference.prediction.latency_s * (1 + 1e-12)
        compared += 1
    assert compared >= 3


def test_one_stage_optimum_applied_to_all_would_break_what_the_shared_one_keeps() -> None:
    """The review's case: validation is cheapest at 1 row, aggregation costs 4 ms a
    batch; at 1 row for every stage aggregation is unstable on 2 workers."""
    problem = Problem(
        arrival_rate=20_000.0,
        budget=2.0,
        sla=50,
        stages=[
            Stage(name="validate", a=2e-5, c=2e-7),
            Stage(name="aggregate", a=4e-3, c=1e-6),
            Stage(name="emit", a=1e-3, c=5e-8),
        ],
    )
    workers = [2, 2, 2]
    assert _oracle_latency(problem, workers, 1) == float("inf")
    got = best_shared_batch(problem, workers)
    assert got is not None
    assert _oracle_latency(problem, workers, got.batch) <= problem.sla_s


def test_bounds_that_do_not_overlap_give_no_shared_batch() -> None:
    problem = Problem(
        arrival_rate=1000.0,
        budget=2.0,
        sla=50,
        stages=[Stage(name="a", a=1e-4, c=0, batch=(1, 10)), Stage(name="b", a=1e-4, c=0,
                                                                   batch=(20, 30))],
    )  # fmt: skip
    assert best_shared_batch(problem, [1, 1]) is None
    with pytest.raises(ValueError, match="1 worker counts for 2 stages"):
        best_shared_batch(problem, [1])
