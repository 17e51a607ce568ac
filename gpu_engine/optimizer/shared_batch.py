"""The batch size a running engine can apply: its one micro-batcher's, for the engine as it runs.

The model gives each stage a batch size and workers of its own, each stage a queue of its
own: a plan for the next start. The running engine is another thing: it cuts one batch,
then runs the stages on it one after another, one batch at a time (its workers split one
batch's aggregation and emission, which the measured seconds of those stages already
include). So to the batch size it can change live, the engine is one server whose service
time is the sum of the stages' (``A + C·b``, with ``A`` and ``C`` the sums of the stages'
``a`` and ``c``): an M/M/1 queue of batches, fed at ``λ/b`` batches a second, each waiting
``(b−1)/(2λ)`` on average to fill. A review found the per-stage model, given the run's
workers at every stage, counting the shard speed-up twice: it applied 151 rows a batch as
meeting the SLA where the engine's utilisation was 5.3 (no batch size kept it below 1.35).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpu_engine.optimizer.model import integer_stage_latency
from gpu_engine.optimizer.problem import Problem

EXHAUSTIVE_UP_TO = 1 << 20  # batch sizes searched one by one; a log grid past that
GRID_POINTS = 4096


@dataclass(frozen=True)
class SharedBatch:
    """The batch size, the time to fill it at the arrival rate, and what the one-server
    model predicts there: the mean latency (fill, queue, service) and the utilisation."""

    batch: int
    max_delay_s: float
    latency_s: float
    utilisation: float


def engine_latency(problem: Problem, batches: np.ndarray) -> np.ndarray:
    """Mean latency of the running engine at each batch size (inf where it cannot keep up)."""
    a = sum(stage.a for stage in problem.stages)
    c = sum(stage.c for stage in problem.stages)
    one = np.ones(len(batches), dtype=np.int64)
    return integer_stage_latency(problem.arrival_rate, a, c, one, batches)


def engine_utilisation(problem: Problem, batch: float) -> float:
    """The share of its time the running engine is busy at this batch size (≥ 1: it
    falls behind without bound)."""
    a = sum(stage.a for stage in problem.stages)
    c = sum(stage.c for stage in problem.stages)
    return problem.arrival_rate * (a / batch + c)


def _searched(low: int, high: int, problem: Problem) -> tuple[np.ndarray, np.ndarray]:
    """Batch sizes and their latencies: every size in ``[low, high]``, or a log grid and
    every size around its best point (each size's latency computed once)."""
    if high - low < EXHAUSTIVE_UP_TO:
        batches = np.arange(low, high + 1, dtype=np.float64)
        return batches, engine_latency(problem, batches)
    grid = np.unique(np.round(np.geomspace(low, high, GRID_POINTS)))
    latency = engine_latency(problem, grid)
    if not np.isfinite(latency).any():
        return grid, latency
    k = int(np.argmin(latency))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    around = np.arange(lo, min(hi, lo + EXHAUSTIVE_UP_TO - 1) + 1, dtype=np.float64)
    return np.concatenate([grid, around]), np.concatenate(
        [latency, engine_latency(problem, around)]
    )


def best_shared_batch(problem: Problem) -> SharedBatch | None:
    """The one batch size, within every stage's bounds, that gives the running engine the
    lowest mean latency (its workers are fixed for the run, so cost and reliability do not
    move), keeping up with the arrivals and within the SLA; None when no size does."""
    low = max(stage.batch[0] for stage in problem.stages)
    high = min(stage.batch[1] for stage in problem.stages)
    if low > high:
        return None
    batches, latency = _searched(low, high, problem)
    meets = np.isfinite(latency) & (latency <= problem.sla_s * (1 + 1e-12))
    if not meets.any():
        return None
    k = int(np.argmin(np.where(meets, latency, np.inf)))
    batch = int(batches[k])
    return SharedBatch(
        batch,
        batch / problem.arrival_rate,
        float(latency[k]),
        engine_utilisation(problem, batch),
    )
