"""Optimisation engine: workers, batch sizes and batch delays per stage, and key balancing.

The runtime needs two things from here: ``recommend(problem) -> Allocation`` (per-stage
workers, batch and ``max_delay_ms``) and ``KeyBalancer`` (key → worker assignment that
adapts to measured per-key load). ``gpu-engine optimize`` is the command-line face.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpu_engine.optimizer.balance import KeyBalancer, jain_index
    from gpu_engine.optimizer.problem import Problem, ProblemError, Stage, Weights, load_problem
    from gpu_engine.optimizer.solver import Allocation, StageAllocation, recommend, solve

# Loaded on first use: the solver imports torch (seconds), which ``gpu-engine run``
# must not pay for at start-up.
_HOME = {
    "KeyBalancer": "balance",
    "jain_index": "balance",
    "Problem": "problem",
    "ProblemError": "problem",
    "Stage": "problem",
    "Weights": "problem",
    "load_problem": "problem",
    "Allocation": "solver",
    "StageAllocation": "solver",
    "recommend": "solver",
    "solve": "solver",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"gpu_engine.optimizer.{_HOME[name]}"), name)


__all__ = [
    "Allocation",
    "KeyBalancer",
    "Problem",
    "ProblemError",
    "Stage",
    "StageAllocation",
    "Weights",
    "jain_index",
    "load_problem",
    "recommend",
    "solve",
]
