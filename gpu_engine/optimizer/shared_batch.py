"""One batch size for every stage: what a running engine's single micro-batcher can apply.

The model gives each stage a batch size of its own; the engine cuts one batch that every
stage then processes. Applying one stage's own optimum to all of them can leave another
stage unstable: a review found a batch of 1 row (validation's optimum) applied where
aggregation then needed 80 workers' worth of its per-batch cost on 3 workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gpu_engine.optimizer.model import Prediction, integer_stage_latency, predict
from gpu_engine.optimizer.problem import Problem

EXHAUSTIVE_UP_TO = 1 << 20  # batch sizes searched one by one; a log grid past that
GRID_POINTS = 4096


@dataclass(frozen=True)
class SharedBatch:
    """The batch size, the time to fill it at the arrival rate, and the model's verdict."""

    batch: int
    max_delay_s: float
    prediction: Prediction


def _total_latency(problem: Problem, workers: Sequence[int], batches: np.ndarray) -> np.ndarray:
    total = np.zeros(len(batches))
    for stage, w in zip(problem.stages, workers, strict=True):
        total += integer_stage_latency(
            problem.arrival_rate, stage.a, stage.c, np.full(len(batches), w), batches
        )
    return total


def _searched(
    low: int, high: int, problem: Problem, workers: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Batch sizes and their total latencies: every size in ``[low, high]``, or a log
    grid and every size around its best point (each size's latency computed once)."""
    if high - low < EXHAUSTIVE_UP_TO:
        batches = np.arange(low, high + 1, dtype=np.float64)
        return batches, _total_latency(problem, workers, batches)
    grid = np.unique(np.round(np.geomspace(low, high, GRID_POINTS)))
    latency = _total_latency(problem, workers, grid)
    if not np.isfinite(latency).any():
        return grid, latency
    k = int(np.argmin(latency))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    around = np.arange(lo, min(hi, lo + EXHAUSTIVE_UP_TO - 1) + 1, dtype=np.float64)
    around_latency = _total_latency(problem, workers, around)
    return np.concatenate([grid, around]), np.concatenate([latency, around_latency])


def best_shared_batch(problem: Problem, workers: Sequence[int]) -> SharedBatch | None:
    """The one batch size, within every stage's bounds, that gives these ``workers`` the
    lowest mean latency (with workers fixed, cost and reliability do not move), keeping
    every stage stable and within the SLA; None when no size does."""
    if len(workers) != len(problem.stages):
        raise ValueError(f"{len(workers)} worker counts for {len(problem.stages)} stages")
    low = max(stage.batch[0] for stage in problem.stages)
    high = min(stage.batch[1] for stage in problem.stages)
    if low > high:
        return None
    batches, latency = _searched(low, high, problem, workers)
    meets = np.isfinite(latency) & (latency <= problem.sla_s * (1 + 1e-12))
    if not meets.any():
        return None
    batch = int(batches[int(np.argmin(np.where(meets, latency, np.inf)))])
    prediction = predict(problem, list(workers), [batch] * len(workers))
    return SharedBatch(batch, batch / problem.arrival_rate, prediction)
