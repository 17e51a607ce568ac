"""The one batch size a running engine applies, against a brute-force oracle written here
from the M/M/1 formulas: the engine runs one batch at a time, its stages in turn, so it is
one server whose service time is the sum of the stages'."""

from __future__ import annotations

import tempfile

import numpy as np
import pyarrow as pa
import pytest

from gpu_engine.batching import MicroBatcher
from gpu_engine.monitoring import EngineMonitoring
from gpu_engine.optimizer.problem import Problem, Stage
from gpu_engine.optimizer.shared_batch import best_shared_batch


def _oracle_latency(problem: Problem, batch: float) -> float:
    """Mean latency of the engine at ``batch`` rows: the fill wait, M/M/1's queueing
    delay ``ρ·S/(1 − ρ)`` and the service time ``S``, the sum of the stages'."""
    lam = problem.arrival_rate
    service = sum(stage.a + stage.c * batch for stage in problem.stages)
    rho = lam * service / batch
    if rho >= 1:
        return float("inf")
    return (batch - 1) / (2 * lam) + rho * service / (1 - rho) + service


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
        low = max(s.batch[0] for s in problem.stages)
        high = min(s.batch[1] for s in problem.stages)
        latency = {b: _oracle_latency(problem, b) for b in range(low, high + 1)}
        meets = {b: x for b, x in latency.items() if x <= problem.sla_s}
        got = best_shared_batch(problem)
        if not meets:
            assert got is None
            none += 1
            continue
        found += 1
        assert got is not None
        assert latency[got.batch] == pytest.approx(min(meets.values()), rel=1e-9)
        assert got.latency_s == pytest.approx(latency[got.batch], rel=1e-9)
        assert got.utilisation < 1 and got.max_delay_s == got.batch / problem.arrival_rate
    assert found > 10 and none > 0  # both outcomes were exercised


def test_a_range_past_the_exhaustive_search_finds_the_same_optimum() -> None:
    """Bounds up to 2^31 - 1: a log grid, then every size around its best point."""
    rng = np.random.default_rng(3)
    compared = 0
    for _ in range(12):
        problem = _problem(rng, 2, 2**31 - 1)
        got = best_shared_batch(problem)
        small = problem.model_copy(
            update={
                "stages": [
                    s.model_copy(update={"batch": (s.batch[0], 1 << 16)}) for s in problem.stages
                ]
            }
        )
        reference = best_shared_batch(small)  # searched one by one
        if reference is None:
            continue
        assert got is not None
        assert got.latency_s <= reference.latency_s * (1 + 1e-12)
        compared += 1
    assert compared >= 3


def test_one_stage_optimum_applied_to_all_would_break_what_the_shared_one_keeps() -> None:
    """An earlier review's case: validation is cheapest at 1 row, aggregation costs 4 ms a
    batch; at 1 row for every stage the engine cannot keep up."""
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
    assert _oracle_latency(problem, 1) == float("inf")
    got = best_shared_batch(problem)
    assert got is not None
    assert _oracle_latency(problem, got.batch) <= problem.sla_s


class _MeasuredEngine:
    """What ``run_optimizer`` reads of an engine: its batch metrics and its batcher."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.batcher = MicroBatcher(65_536, 50)

    def batch_metrics(self) -> pa.Table:
        return self.table

    def set_batching(self, *, max_rows=None, max_delay_s=None) -> None:
        self.batcher.max_rows = max_rows or self.batcher.max_rows
        self.batcher.max_delay_s = max_delay_s or self.batcher.max_delay_s


def _metrics(cost: dict[str, tuple[float, float]], arrival_rate: float, workers: int) -> pa.Table:
    """400 batches of 500 to 20,000 rows, each stage taking ``a + c·rows`` seconds."""
    rows = np.random.default_rng(0).integers(500, 20_000, 400)
    times = np.cumsum(rows / arrival_rate)
    records = [
        (float(t), stage, int(n), a + c * n, workers)
        for t, n in zip(times, rows, strict=True)
        for stage, (a, c) in cost.items()
    ]
    names = ["time_s", "stage", "rows", "seconds", "workers"]
    return pa.table(dict(zip(names, map(list, zip(*records, strict=True)), strict=True)))


def test_run_optimizer_applies_nothing_where_the_engine_cannot_keep_up() -> None:
    """The review's case: 300,000 events/s, 4.5 µs of work an event over the stages run in
    turn, so the engine is busy 1.35 s a second at any batch size. The per-stage model
    with the run's 4 workers at every stage applied 151 rows as meeting the SLA (the
    shards' speed-up, already in the measured seconds, counted twice)."""
    cost = {"validate": (5e-4, 1.5e-6), "aggregate": (1e-3, 2.5e-6), "emit": (5e-4, 0.5e-6)}
    engine = _MeasuredEngine(_metrics(cost, 300_000.0, workers=4))
    monitoring = EngineMonitoring(tempfile.mkdtemp())
    monitoring.engine = engine  # type: ignore[assignment]
    out = monitoring._run_optimizer(None, budget=100.0, sla="200ms")
    assert out["applied_meets_sla"] is False
    assert out["applied"]["max_rows"] == 65_536  # unchanged
    assert out["utilisation_now"] == pytest.approx(300_000 * (2e-3 / 65_536 + 4.5e-6), rel=1e-3)


def test_run_optimizer_applies_the_brute_force_best_size_where_one_exists() -> None:
    cost = {"validate": (5e-4, 1.5e-7), "aggregate": (2e-3, 2.5e-7), "emit": (5e-4, 0.5e-7)}
    engine = _MeasuredEngine(_metrics(cost, 100_000.0, workers=4))
    monitoring = EngineMonitoring(tempfile.mkdtemp())
    monitoring.engine = engine  # type: ignore[assignment]
    out = monitoring._run_optimizer(None, budget=100.0, sla="200ms")
    problem = Problem(
        arrival_rate=100_000.0,
        budget=100.0,
        sla=200,
        stages=[Stage(name=n, a=a, c=c) for n, (a, c) in cost.items()],
    )
    sizes = range(1, 65_537)
    best = min(sizes, key=lambda b: _oracle_latency(problem, b))
    assert out["applied_meets_sla"] is True
    assert abs(out["applied"]["max_rows"] - best) <= max(2, best // 100)  # fitted a, c
    assert out["predicted_latency_s_now"] == pytest.approx(_oracle_latency(problem, best), rel=0.02)
    assert out["applied"]["max_delay_s"] == pytest.approx(
        out["applied"]["max_rows"] / 100_000, rel=0.02
    )


def test_bounds_that_do_not_overlap_give_no_shared_batch() -> None:
    problem = Problem(
        arrival_rate=1000.0,
        budget=2.0,
        sla=50,
        stages=[Stage(name="a", a=1e-4, c=0, batch=(1, 10)), Stage(name="b", a=1e-4, c=0,
                                                                   batch=(20, 30))],
    )  # fmt: skip
    assert best_shared_batch(problem) is None
