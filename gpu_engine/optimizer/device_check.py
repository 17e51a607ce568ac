"""Check that the solver gives the same answers on the GPU as on the CPU, and time both.

``python -m gpu_engine.optimizer.device_check [--instances N] [--require-cuda]``
solves a fixed batch of random problems on the CPU and on CUDA (when present),
prints the largest relative difference of the relaxed objectives and allocations
and whether the integer allocations are identical, and exits 1 on a mismatch
(relative difference > 1e-6 or any integer allocation differing). Needs only
numpy, torch, pyyaml and pydantic.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from gpu_engine.optimizer.model import ProblemBatch
from gpu_engine.optimizer.problem import random_problems
from gpu_engine.optimizer.solver import integer_solution, solve_relaxed

TOL = 1e-6


def _solve(problems: list, device: str, iterations: int) -> tuple[float, dict[str, np.ndarray]]:
    batch = ProblemBatch.from_problems(problems, device=device)
    solve_relaxed(ProblemBatch.from_problems(problems[:4], device=device), iterations=10)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    res = solve_relaxed(batch, iterations=iterations)
    if device == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return elapsed, {
        "objective": res.objective.cpu().numpy(),
        "workers": res.workers.cpu().numpy(),
        "batch": res.batch.cpu().numpy(),
        "feasible": res.feasible.cpu().numpy(),
    }


def _rel(x: np.ndarray, y: np.ndarray) -> float:
    both_inf = ~np.isfinite(x) & ~np.isfinite(y) & (x == y)
    d = np.where(both_inf, 0.0, np.abs(x - y) / np.maximum(np.abs(y), 1e-12))
    return float(np.max(d)) if d.size else 0.0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gpu_engine.optimizer.device_check")
    ap.add_argument("--instances", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--integer", type=int, default=32, help="instances to compare after rounding")
    ap.add_argument("--require-cuda", action="store_true", help="exit 2 when there is no GPU")
    args = ap.parse_args(argv)
    problems = random_problems(args.instances, seed=7)
    t_cpu, cpu = _solve(problems, "cpu", args.iterations)
    report: dict[str, object] = {"instances": args.instances, "cpu_s": t_cpu}
    if not torch.cuda.is_available():
        report["cuda"] = "not available: only the CPU path ran"
        print(json.dumps(report, indent=2))
        return 2 if args.require_cuda else 0
    t_gpu, gpu = _solve(problems, "cuda", args.iterations)
    report["gpu_s"] = t_gpu
    report["device"] = torch.cuda.get_device_name(0)
    diffs = {k: _rel(gpu[k], cpu[k]) for k in ("objective", "workers", "batch")}
    same_verdict = bool(np.array_equal(cpu["feasible"], gpu["feasible"]))
    int_same = 0
    n_int = min(args.integer, len(problems))
    for i in range(n_int):
        n = len(problems[i].stages)
        a = integer_solution(problems[i], cpu["workers"][i, :n])
        b = integer_solution(problems[i], gpu["workers"][i, :n])
        int_same += [s.workers for s in a.stages] == [s.workers for s in b.stages] and [
            s.batch for s in a.stages
        ] == [s.batch for s in b.stages]
    report.update(
        max_rel_diff=diffs, same_feasibility=same_verdict, integer_identical=f"{int_same}/{n_int}"
    )
    ok = max(diffs.values()) <= TOL and same_verdict and int_same == n_int
    report["ok"] = ok
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
