"""Torch batched solver vs scipy SLSQP (best of 20 starts) on random allocation problems.

Run: ``python -m benchmarks.optimizer`` (1,000 instances; ``--instances 20`` for CI).

Both solve the same relaxed model (real worker counts, Erlang C wait interpolated
between floor and ceil, relaxed stability ``w ≥ A + 1``); SLSQP evaluates it with an
independent scalar implementation below, which also re-checks every torch answer,
so a torch-side modelling error would show up as a violation or an objective gap.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import minimize

from gpu_engine.optimizer.model import ProblemBatch
from gpu_engine.optimizer.problem import Problem, random_problems
from gpu_engine.optimizer.solver import FEAS_TOL, solve_relaxed

GAP_TOL = 0.005  # torch within 0.5% of SLSQP's objective
VIOLATION_TOL = 1e-4  # relative constraint violation allowed


def scalar_model(problem: Problem, x: Sequence[float]) -> tuple[float, list[float]]:
    """Objective and normalised constraints g ≤ 0 of the relaxed model, in plain Python.

    ``x`` holds the workers scaled to [0, 1] then the log batch sizes scaled to [0, 1].
    """
    lam = problem.arrival_rate
    n = len(problem.stages)
    lat = cost = log_rel = 0.0
    stab = []
    for i, st in enumerate(problem.stages):
        lo, hi = st.workers
        w = lo + x[i] * (hi - lo)
        llo, lhi = math.log(st.batch[0]), math.log(st.batch[1])
        b = math.exp(llo + x[n + i] * (lhi - llo))
        s = st.a + st.c * b
        load = lam * s / b
        weff = max(w, load + 1.0)
        k0 = math.floor(weff)
        f = weff - k0
        bl = 1.0
        for j in range(1, k0 + 1):
            bl = load * bl / (j + load * bl)
        bl1 = load * bl / (k0 + 1 + load * bl)
        c0 = k0 * bl / (k0 - load * (1 - bl))
        c1 = (k0 + 1) * bl1 / (k0 + 1 - load * (1 - bl1))
        wq = (1 - f) * c0 * s / (k0 - load) + f * c1 * s / (k0 + 1 - load)
        lat += (b - 1) / (2 * lam) + wq + s  # batch-fill wait: (b-1)/(2λ)
        cost += problem.stage_price(i) * w
        log_rel += math.log1p(-(max(problem.failure_prob, 1e-300) ** w))
        stab.append((load + 1.0) / w - 1.0)
    wt = problem.weights
    obj = (
        wt.latency * lat / problem.sla_s
        + wt.cost * cost / problem.budget
        + wt.reliability * (1 - math.exp(log_rel))
    )
    return obj, [lat / problem.sla_s - 1.0, cost / problem.budget - 1.0, *stab]


def slsqp_solve(problem: Problem, starts: int = 20, seed: int = 0) -> tuple[float, float]:
    """Best feasible objective over ``starts`` random SLSQP starts (inf if none) and the
    smallest max-violation reached."""
    n = 2 * len(problem.stages)
    rng = np.random.default_rng(seed)
    cache: dict[bytes, tuple[float, list[float]]] = {}

    def ev(x: np.ndarray) -> tuple[float, list[float]]:
        key = x.tobytes()
        if key not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[key] = scalar_model(problem, x)
        return cache[key]

    cons = {"type": "ineq", "fun": lambda x: -np.asarray(ev(x)[1])}
    best, best_vio = math.inf, math.inf
    for _ in range(starts):
        x0 = rng.random(n)
        res = minimize(
            lambda x: ev(x)[0], x0, method="SLSQP", bounds=[(0.0, 1.0)] * n,
            constraints=[cons], options={"maxiter": 100, "ftol": 1e-10},
        )  # fmt: skip
        x = np.clip(res.x, 0.0, 1.0)
        obj, g = scalar_model(problem, x)
        vio = max(g)
        best_vio = min(best_vio, vio)
        if vio <= FEAS_TOL and obj < best:
            best = obj
    return best, best_vio


def _to_unit(problem: Problem, w: np.ndarray, b: np.ndarray) -> list[float]:
    us, vs = [], []
    for i, st in enumerate(problem.stages):
        lo, hi = st.workers
        us.append(0.0 if hi == lo else (w[i] - lo) / (hi - lo))
        llo, lhi = math.log(st.batch[0]), math.log(st.batch[1])
        vs.append(0.0 if lhi == llo else (math.log(b[i]) - llo) / (lhi - llo))
    return us + vs


def run_torch(
    problems: list[Problem], device: str, iterations: int, starts: int
) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Wall and process-CPU seconds of one batched solve of all problems (batch built
    inside the timing), and the relaxed allocations."""
    warm = ProblemBatch.from_problems(problems[:8], device=device)
    solve_relaxed(warm, iterations=20, starts=starts)
    if device == "cuda":
        torch.cuda.synchronize()
    c0, t0 = time.process_time(), time.perf_counter()
    batch = ProblemBatch.from_problems(problems, device=device)
    res = solve_relaxed(batch, iterations=iterations, starts=starts)
    w, b = res.workers.cpu().numpy(), res.batch.cpu().numpy()
    return time.perf_counter() - t0, time.process_time() - c0, w, b


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.optimizer", description=__doc__)
    ap.add_argument("--instances", type=int, default=1000)
    ap.add_argument("--starts", type=int, default=20, help="SLSQP random starts per instance")
    ap.add_argument("--torch-starts", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--json", type=Path, help="write the figures here as JSON")
    ap.add_argument(
        "--slsqp-cache",
        type=Path,
        help="reuse (or store) the SLSQP answers and loop time, e.g. benchmarks/.cache/slsqp.json",
    )
    args = ap.parse_args(argv)

    problems = random_problems(args.instances, seed=args.seed)
    t_cpu, c_cpu, w, b = run_torch(problems, "cpu", args.iterations, args.torch_starts)
    t_gpu = None
    if torch.cuda.is_available():
        t_gpu, _, _, _ = run_torch(problems, "cuda", args.iterations, args.torch_starts)

    cache = args.slsqp_cache
    key = f"n{args.instances}-seed{args.seed}-starts{args.starts}"
    cached = json.loads(cache.read_text()) if cache and cache.exists() else {}
    if key in cached:
        ref = [tuple(r) for r in cached[key]["ref"]]
        slsqp_cpu, slsqp_wall = cached[key]["cpu_seconds"], cached[key].get("wall_seconds")
        print(f"SLSQP results and time from {cache} (key {key})", file=sys.stderr)
    else:
        c0, t0 = time.process_time(), time.perf_counter()
        ref = [slsqp_solve(p, starts=args.starts, seed=i) for i, p in enumerate(problems)]
        slsqp_cpu, slsqp_wall = time.process_time() - c0, time.perf_counter() - t0
        if cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cached[key] = {"ref": ref, "cpu_seconds": slsqp_cpu, "wall_seconds": slsqp_wall}
            cache.write_text(json.dumps(cached))

    gaps, vios, agree, both, disagreements = [], [], 0, 0, []
    agree_loose = 0  # verdicts when a violation up to VIOLATION_TOL counts as feasible
    for i, p in enumerate(problems):
        n = len(p.stages)
        obj, g = scalar_model(p, _to_unit(p, w[i, :n], b[i, :n]))
        t_feas = max(g) <= FEAS_TOL
        s_obj, _ = ref[i]
        s_feas = math.isfinite(s_obj)
        agree += t_feas == s_feas
        agree_loose += (max(g) <= VIOLATION_TOL) == (ref[i][1] <= VIOLATION_TOL)
        if t_feas != s_feas:
            disagreements.append({"instance": i, "torch_max_g": max(g), "slsqp_feasible": s_feas})
        if t_feas:
            vios.append(max(0.0, max(g)))
        if t_feas and s_feas:
            both += 1
            gaps.append((obj - s_obj) / abs(s_obj))
    gaps_a = np.array(gaps)
    n_feas_slsqp = sum(math.isfinite(r[0]) for r in ref)
    within = int(np.sum(gaps_a <= GAP_TOL))
    out = {
        "instances": args.instances,
        "feasible_slsqp": n_feas_slsqp,
        "feasible_both": both,
        "within_0.5pct": within,
        "within_0.5pct_frac": within / max(both, 1),
        "gap_median": float(np.median(gaps_a)) if both else None,
        "gap_max": float(gaps_a.max()) if both else None,
        "torch_better_than_slsqp": int(np.sum(gaps_a < -1e-9)),
        "max_violation": max(vios) if vios else 0.0,
        "verdict_agreement": agree / args.instances,
        "verdict_agreement_at_1e-4": agree_loose / args.instances,
        "disagreements": disagreements[:20],
        "torch_cpu_wall_s": t_cpu,
        "torch_cpu_process_s": c_cpu,
        "torch_gpu_wall_s": t_gpu,
        "slsqp_cpu_s": slsqp_cpu,
        "slsqp_wall_s": slsqp_wall,
        # main figure: a single-threaded SLSQP loop's CPU time (its wall time on an idle
        # core) over the batched torch wall time on this CPU
        "speedup_cpu": slsqp_cpu / t_cpu,
        # conservative: charges torch for the CPU time of all its threads
        "speedup_cpu_seconds": slsqp_cpu / c_cpu,
        "speedup_wall_same_run": (slsqp_wall / t_cpu) if slsqp_wall else None,
        "speedup_gpu": (slsqp_cpu / t_gpu) if t_gpu else None,
        "torch_threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "iterations": args.iterations,
        "torch_starts": args.torch_starts,
        "slsqp_starts": args.starts,
    }
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    ok = (
        out["within_0.5pct_frac"] >= 0.99
        and out["max_violation"] <= VIOLATION_TOL
        and out["verdict_agreement_at_1e-4"] == 1.0
        and out["speedup_cpu"] >= 50
    )
    print("goals met" if ok else "goals NOT met", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
