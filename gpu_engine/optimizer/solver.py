"""Solve allocation problems: batched augmented-Lagrangian Adam, then an exact integer phase.

1. Relaxed solve (torch, batched, float64, GPU when present): workers and
   log-batch-sizes are scaled to [0, 1] and optimised with Adam on the
   augmented Lagrangian of the SLA and budget constraints (plus relaxed
   stability), projecting back onto the bounds and the stable region after
   every step. Several starts per problem ride along in the batch dimension
   and the best feasible iterate seen is kept, so a late oscillation can't lose it.
2. Integer phase (numpy, per problem): the batch size only affects latency, so
   for every stage and every integer worker count the latency-minimising
   integer batch is found first. Then the relaxed optimum is rounded and
   improved by local search over neighbouring worker vectors that keep every
   constraint. An exact Pareto dynamic programme over stages gives the cheapest
   allocation that meets the SLA; it seeds the search (so a feasible problem is
   never reported infeasible) and decides infeasibility and its binding constraint.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from gpu_engine.optimizer.model import (
    ProblemBatch,
    Variant,
    default_device,
    evaluate,
    integer_stage_latency,
    offered_load,
    predict,
    stage_latency,
)
from gpu_engine.optimizer.problem import Problem

FEAS_TOL = 1e-6  # relative constraint violation accepted as feasible in the relaxed solve


# ------------------------------------------------------------------------- relaxed solve


@dataclass(frozen=True)
class RelaxedResult:
    """Best relaxed allocation per problem (best over starts)."""

    workers: torch.Tensor  # (P, S)
    batch: torch.Tensor  # (P, S)
    objective: torch.Tensor  # (P,)
    violation: torch.Tensor  # (P,) max normalised constraint value (≤ 0 when feasible)
    feasible: torch.Tensor  # (P,) bool


def _unscale(batch: ProblemBatch, u: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Map the unit-box variables to (workers, batch).

    The batch comes from ``v`` on a log scale. The workers run from the least stable
    count ``max(low, A(b) + 1)`` (``u = 0``) to the upper bound (``u = 1``), so the
    stability constraint holds by construction wherever it can, and the gradient in
    ``v`` sees that a bigger batch lowers the load and so the workers needed.
    """
    log_lo, log_hi = torch.log(batch.b_lo), torch.log(batch.b_hi)
    b = torch.exp(log_lo + v * (log_hi - log_lo))
    floor_w = torch.minimum(torch.maximum(offered_load(batch, b) + 1.0, batch.w_lo), batch.w_hi)
    w = floor_w + u * (batch.w_hi - floor_w)
    return w, b


def _project(batch: ProblemBatch, u: torch.Tensor, v: torch.Tensor) -> None:
    """In place: clamp to the unit box; where even the most workers cannot carry the
    load, raise the batch size to the smallest that lets them (up to its bound)."""
    u.clamp_(0.0, 1.0)
    v.clamp_(0.0, 1.0)
    log_lo, log_hi = torch.log(batch.b_lo), torch.log(batch.b_hi)
    b = torch.exp(log_lo + v * (log_hi - log_lo))
    lam = batch.lam[:, None]
    room = batch.w_hi - 1.0 - lam * batch.c
    need_b = torch.where(room > 0, lam * batch.a / room.clamp_min(1e-300), batch.b_hi)
    b = torch.minimum(torch.maximum(b, need_b * (1 + 1e-12)), batch.b_hi)
    span_b = log_hi - log_lo
    v.copy_(
        torch.where(span_b > 0, (torch.log(b) - log_lo) / span_b.clamp_min(1e-300), 0.0).clamp(
            0.0, 1.0
        )
    )


def _to_unit(
    batch: ProblemBatch, w: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of ``_unscale``: the unit-box point of an allocation."""
    log_lo, log_hi = torch.log(batch.b_lo), torch.log(batch.b_hi)
    span_b = log_hi - log_lo
    v = torch.where(span_b > 0, (torch.log(b) - log_lo) / span_b.clamp_min(1e-300), 0.0)
    floor_w = torch.minimum(torch.maximum(offered_load(batch, b) + 1.0, batch.w_lo), batch.w_hi)
    span_w = batch.w_hi - floor_w
    u = torch.where(span_w > 0, (w - floor_w) / span_w.clamp_min(1e-300), 0.0)
    return u.clamp(0.0, 1.0), v.clamp(0.0, 1.0)


GRAD_CAP = 1e150  # squared by Adam, so still finite in float64


def _finite_grad(grad: torch.Tensor) -> torch.Tensor:
    """Gradients capped at ±``GRAD_CAP``, NaN as 0: in a problem of extreme scale (a
    fill time of 1e200 s, a price of 1e300) one inf gradient would make Adam's moments
    inf/inf = NaN and poison that row for good. Adam's steps do not depend on the
    gradient's scale, so the cap changes nothing on ordinary problems."""
    return torch.nan_to_num(grad, nan=0.0, posinf=GRAD_CAP, neginf=-GRAD_CAP).clamp(
        -GRAD_CAP, GRAD_CAP
    )


def _al_adam(
    rb: ProblemBatch,
    u: torch.Tensor,
    v: torch.Tensor,
    iterations: int,
    variant: Variant,
    lr: float,
    outer_every: int,
    rho0: float,
    rho_growth: float,
    rho_max: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on the augmented Lagrangian from (u, v); returns the best iterate per row:
    the best feasible one, or the least infeasible while none is feasible."""
    n, s = u.shape
    dev, dt = u.device, u.dtype
    with torch.no_grad():
        _project(rb, u, v)
    u.requires_grad_(True)
    v.requires_grad_(True)
    u.register_hook(_finite_grad)
    v.register_hook(_finite_grad)
    opt = torch.optim.Adam([u, v], lr=lr, betas=(0.9, 0.99))
    mu = torch.zeros(n, 2 + s, dtype=dt, device=dev)
    rho = torch.full((n, 1), rho0, dtype=dt, device=dev)
    best_obj = torch.full((n,), math.inf, dtype=dt, device=dev)
    best_vio = torch.full((n,), math.inf, dtype=dt, device=dev)
    best_w = torch.zeros(n, s, dtype=dt, device=dev)
    best_b = torch.ones(n, s, dtype=dt, device=dev)
    min_lr = lr * 1e-3
    for it in range(iterations + 1):
        w, b = _unscale(rb, u, v)
        ev = evaluate(rb, w, b, variant)
        g = ev.constraints
        with torch.no_grad():
            vio = g.max(dim=1).values
            feas = vio <= FEAS_TOL
            score = torch.where(feas, ev.objective, math.inf)
            better = (score < best_obj) | (~feas & (best_obj == math.inf) & (vio < best_vio))
            best_obj = torch.where(feas & better, score, best_obj)
            best_vio = torch.where(better, vio, best_vio)
            best_w = torch.where(better[:, None], w, best_w)
            best_b = torch.where(better[:, None], b, best_b)
        if it == iterations:
            break
        shifted = torch.clamp(mu + rho * g, min=0.0)
        lagr = ev.objective + ((shifted**2 - mu**2) / (2.0 * rho)).sum(dim=1)
        opt.zero_grad(set_to_none=True)
        lagr.sum().backward()
        for group in opt.param_groups:
            group["lr"] = min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * it / iterations))
        opt.step()
        with torch.no_grad():
            _project(rb, u, v)
            if (it + 1) % outer_every == 0:
                mu = shifted.detach()
                rho = torch.clamp(rho * rho_growth, max=rho_max)
    return best_w, best_b.detach(), best_obj, best_vio


def solve_relaxed(
    batch: ProblemBatch,
    iterations: int = 1000,
    starts: int = 16,
    variant: Variant = "erlang",
    seed: int = 0,
    lr: float = 0.02,
    outer_every: int = 50,
    rho0: float = 10.0,
    rho_growth: float = 2.0,
    rho_max: float = 1e3,
    refine_fraction: float = 0.25,
) -> RelaxedResult:
    """Batched augmented-Lagrangian Adam on the relaxed model.

    All tensors carry the problem (× start) dimension first, so one call solves every
    problem at once; the device and dtype are those of ``batch``. Starts are drawn on
    the CPU from ``seed`` so the CPU and GPU see identical starting points.

    ``iterations`` are split: a multi-start phase, then (``refine_fraction`` of them) a
    single-start phase from each problem's best point after its batch sizes were
    re-optimised and its workers tried on the neighbouring kinks, which lets the other
    stages re-balance around the moved ones. The better of the two is returned.
    """
    p, s = batch.a.shape
    rb = batch.repeat(starts)
    gen = torch.Generator().manual_seed(seed)
    u0 = torch.rand(p, starts, s, generator=gen, dtype=torch.float64)
    v0 = torch.rand(p, starts, s, generator=gen, dtype=torch.float64)
    # fixed starts first: most workers (likeliest feasible), then the fewest stable workers
    # at several batch sizes (cost-driven optima sit there); the rest are random
    fixed = [(1.0, 0.5), (0.0, 0.7), (0.0, 0.5), (0.0, 0.3), (0.0, 0.15)]
    for j, (uf, vf) in enumerate(fixed[:starts]):
        u0[:, j], v0[:, j] = uf, vf
    dev, dt = batch.lam.device, batch.lam.dtype
    u = u0.reshape(p * starts, s).to(device=dev, dtype=dt)
    v = v0.reshape(p * starts, s).to(device=dev, dtype=dt)
    refine = int(iterations * refine_fraction)
    best_w, best_b, best_obj, best_vio = _al_adam(
        rb, u, v, iterations - refine, variant, lr, outer_every, rho0, rho_growth, rho_max
    )
    best_b, best_obj, best_vio = _polish_batch(rb, best_w, best_b, best_obj, best_vio, variant)
    obj = best_obj.reshape(p, starts)
    vio = best_vio.reshape(p, starts)
    # per problem: best feasible start, else least violation
    key = torch.where(torch.isfinite(obj), obj, 1e300 + vio)
    idx = key.argmin(dim=1)
    rows = torch.arange(p, device=dev) * starts + idx
    w_f, b_f, o_f, v_f = _snap_to_kinks(
        batch, best_w[rows], best_b[rows], best_obj[rows], best_vio[rows], variant
    )
    if refine > 0:
        with torch.no_grad():
            u1, v1 = _to_unit(batch, w_f, b_f)
        w_r, b_r, o_r, v_r = _al_adam(
            batch, u1, v1, refine, variant, lr / 4, outer_every, rho_max, rho_growth, rho_max
        )
        b_r, o_r, v_r = _polish_batch(batch, w_r, b_r, o_r, v_r, variant)
        w_r, b_r, o_r, v_r = _snap_to_kinks(batch, w_r, b_r, o_r, v_r, variant)
        take = (o_r < o_f) | (~torch.isfinite(o_f) & (v_r < v_f))
        w_f = torch.where(take[:, None], w_r, w_f)
        b_f = torch.where(take[:, None], b_r, b_f)
        o_f = torch.where(take, o_r, o_f)
        v_f = torch.where(take, v_r, v_f)
    return RelaxedResult(
        workers=w_f.detach(),
        batch=b_f.detach(),
        objective=o_f,
        violation=v_f,
        feasible=torch.isfinite(o_f),
    )


def _polish_batch(
    batch: ProblemBatch,
    w: torch.Tensor,
    b: torch.Tensor,
    obj: torch.Tensor,
    vio: torch.Tensor,
    variant: Variant,
    steps: int = 45,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """At fixed workers, set every stage's batch to its latency minimiser (golden section).

    The batch size only enters latency and stability, so at fixed workers each stage's
    best batch is a 1-D problem of its own, solved here (to ~1e-8 in log b) over the
    stable range ``b ≥ λa/(w − 1 − λc)``; first-order steps that hold the workers on
    a kink cannot make this move. Kept only where it lowers the objective.
    """
    lam = batch.lam[:, None]
    room = w - 1.0 - lam * batch.c
    b_min = torch.where(room > 0, lam * batch.a / room.clamp_min(1e-300), math.inf)
    lo = torch.log(torch.maximum(batch.b_lo, b_min * (1 + 1e-12)))
    hi = torch.log(batch.b_hi)
    ok = lo <= hi
    lo = torch.where(ok, lo, hi)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0

    def lat(t: torch.Tensor) -> torch.Tensor:
        return stage_latency(batch, w, torch.exp(t), variant)

    with torch.no_grad():
        x1 = hi - ratio * (hi - lo)
        x2 = lo + ratio * (hi - lo)
        f1, f2 = lat(x1), lat(x2)
        for _ in range(steps):
            left = f1 < f2  # the minimum lies in [lo, x2]
            hi = torch.where(left, x2, hi)
            lo = torch.where(left, lo, x1)
            new_x = torch.where(left, hi - ratio * (hi - lo), lo + ratio * (hi - lo))
            fn = lat(new_x)
            x1, x2 = torch.where(left, new_x, x2), torch.where(left, x1, new_x)
            f1, f2 = torch.where(left, fn, f2), torch.where(left, f1, fn)
        cand_b = torch.where(ok, torch.exp(torch.where(f1 < f2, x1, x2)), b)
        ev = evaluate(batch, w, cand_b, variant)
        c_vio = ev.constraints.max(dim=1).values
        c_obj = torch.where(c_vio <= FEAS_TOL, ev.objective, math.inf)
        better = (c_obj < obj) | (~torch.isfinite(obj) & (c_vio < vio))
    return (
        torch.where(better[:, None], cand_b, b),
        torch.where(better, c_obj, obj),
        torch.where(better, c_vio, vio),
    )


def _snap_to_kinks(
    batch: ProblemBatch,
    w: torch.Tensor,
    b: torch.Tensor,
    obj: torch.Tensor,
    vio: torch.Tensor,
    variant: Variant,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Try moving each stage's workers onto the nearest integers.

    The interpolated wait has a kink at every integer worker count, and optima often
    sit exactly on one; first-order steps only circle it, so the neighbouring
    integers are tried directly (all floor/keep/ceil combinations for few stages,
    one stage at a time otherwise) and kept where feasible and better.
    """
    n, s = w.shape
    if 3**s <= 243:
        choices = torch.tensor(list(itertools.product((0, 1, 2), repeat=s)), device=w.device)
    else:
        rows = [[1] * s]
        for i in range(s):
            for c in (0, 2):
                r = [1] * s
                r[i] = c
                rows.append(r)
        choices = torch.tensor(rows, device=w.device)
    m = choices.shape[0]
    opts = torch.stack([torch.floor(w), w, torch.ceil(w)], dim=-1)  # (n, s, 3)
    opts = torch.minimum(torch.maximum(opts, batch.w_lo[..., None]), batch.w_hi[..., None])
    idx = choices[None, :, :, None].expand(n, m, s, 1)
    cand_w = torch.gather(opts[:, None].expand(n, m, s, 3), 3, idx)[..., 0].reshape(n * m, s)
    cand_b = b.repeat_interleave(m, dim=0)
    big = batch.repeat(m)
    with torch.no_grad():
        ev = evaluate(big, cand_w, cand_b, variant)
    c_vio = ev.constraints.max(dim=1).values
    c_obj = torch.where(c_vio <= FEAS_TOL, ev.objective, math.inf)
    # each snapped candidate gets its own best batch sizes before they are compared
    cand_b, c_obj, c_vio = _polish_batch(big, cand_w, cand_b, c_obj, c_vio, variant)
    c_obj, c_vio = c_obj.reshape(n, m), c_vio.reshape(n, m)
    k = c_obj.argmin(dim=1)
    new_obj = c_obj.gather(1, k[:, None])[:, 0]
    take = new_obj < obj
    rows_i = torch.arange(n, device=w.device) * m + k
    w = torch.where(take[:, None], cand_w[rows_i], w)
    b = torch.where(take[:, None], cand_b[rows_i], b)
    obj = torch.where(take, new_obj, obj)
    vio = torch.where(take, c_vio.gather(1, k[:, None])[:, 0], vio)
    return w, b, obj, vio


# ------------------------------------------------------------------------- integer phase


@dataclass(frozen=True)
class StageTable:
    """For every integer worker count of one stage: best batch and its latency."""

    workers: np.ndarray  # (W,) lo..hi
    batch: np.ndarray  # (W,) latency-minimising integer batch size
    latency: np.ndarray  # (W,) seconds, inf where no batch size is stable


def best_batch_table(
    lam: float, a: float, c: float, workers: tuple[int, int], batch: tuple[int, int]
) -> StageTable:
    """Latency-minimising integer batch per worker count.

    Coarse log grid, then integer ternary search inside the bracket around the
    grid minimum (latency is unimodal in b at fixed w: the fill and service terms
    grow linearly while the queueing delay falls with the load), then the best of
    the final few points. Small ranges are searched exhaustively.
    """
    ws = np.arange(workers[0], workers[1] + 1, dtype=np.int64)
    b_lo, b_hi = batch
    if b_hi - b_lo + 1 <= 512:
        grid = np.arange(b_lo, b_hi + 1, dtype=np.int64)
    else:
        grid = np.unique(np.round(np.geomspace(b_lo, b_hi, 256)).astype(np.int64))
    lat = integer_stage_latency(lam, a, c, ws[:, None], grid[None, :].astype(np.float64))
    j = np.argmin(lat, axis=1)
    best_b = grid[j]
    best_l = lat[np.arange(len(ws)), j]
    if len(grid) < b_hi - b_lo + 1:
        lo = grid[np.maximum(j - 1, 0)].copy()
        hi = grid[np.minimum(j + 1, len(grid) - 1)].copy()

        def f(bv: np.ndarray) -> np.ndarray:
            return integer_stage_latency(lam, a, c, ws, bv.astype(np.float64))

        while np.any(active := hi - lo > 2):
            third = (hi - lo) // 3
            m1, m2 = lo + third, hi - third
            f1, f2 = f(m1), f(m2)
            left = f1 < f2
            hi = np.where(active & left, m2 - 1, hi)
            lo = np.where(active & ~left, m1 + 1, lo)
        for off in range(3):
            cand = np.minimum(lo + off, hi)
            fc = f(cand)
            take = fc < best_l
            best_l = np.where(take, fc, best_l)
            best_b = np.where(take, cand, best_b)
    return StageTable(workers=ws, batch=best_b.astype(np.int64), latency=best_l)


@dataclass(frozen=True)
class IntegerModel:
    """A problem reduced to integer worker vectors (batch sizes chosen per worker count)."""

    problem: Problem
    tables: list[StageTable]
    prices: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def build(cls, problem: Problem) -> IntegerModel:
        tables = [
            best_batch_table(problem.arrival_rate, st.a, st.c, st.workers, st.batch)
            for st in problem.stages
        ]
        return cls(
            problem=problem,
            tables=tables,
            prices=np.array([problem.stage_price(i) for i in range(len(tables))]),
            lo=np.array([st.workers[0] for st in problem.stages], dtype=np.int64),
            hi=np.array([st.workers[1] for st in problem.stages], dtype=np.int64),
        )

    def score(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Objective and feasibility of integer worker vectors ``w`` (N, S)."""
        p = self.problem
        idx = w - self.lo
        lat = sum(t.latency[idx[:, i]] for i, t in enumerate(self.tables))
        cost = w @ self.prices
        log_rel = np.log1p(-(p.failure_prob ** w.astype(np.float64))).sum(axis=1)
        rel = np.exp(log_rel)
        wt = p.weights
        finite = np.isfinite(lat)
        lat_term = np.full(lat.shape, np.inf)
        lat_term[finite] = wt.latency * lat[finite] / p.sla_s
        obj = lat_term + wt.cost * cost / p.budget + wt.reliability * (1 - rel)
        ok = np.isfinite(lat) & (lat <= p.sla_s * (1 + 1e-12)) & (cost <= p.budget * (1 + 1e-12))
        return np.where(np.isfinite(obj), obj, np.inf), ok

    def batch_for(self, w: np.ndarray) -> np.ndarray:
        return np.array([t.batch[w[i] - self.lo[i]] for i, t in enumerate(self.tables)])

    def _front(
        self, within: Callable[[np.ndarray, np.ndarray], np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Pareto-optimal worker vectors over (cost, best latency), and their latencies,
        among those whose cost and latency pass ``within``; by cost, latency falling.

        Dynamic programme over stages keeping only the Pareto front of the partial
        allocations; exact because both add up over stages and only grow, so a partial
        allocation that fails ``within`` cannot be completed into one that passes.
        """
        cost = np.zeros(1)
        lat = np.zeros(1)
        choices = np.zeros((1, 0), dtype=np.int64)
        for i, t in enumerate(self.tables):
            ok = np.isfinite(t.latency)
            ow, oc, ol = t.workers[ok], t.workers[ok] * self.prices[i], t.latency[ok]
            c2 = (cost[:, None] + oc[None, :]).ravel()
            l2 = (lat[:, None] + ol[None, :]).ravel()
            parent = np.repeat(np.arange(len(cost)), len(ow))
            pick = np.tile(ow, len(cost))
            keep = within(c2, l2)
            c2, l2, parent, pick = c2[keep], l2[keep], parent[keep], pick[keep]
            if c2.size == 0:
                return None
            order = np.lexsort((l2, c2))
            c2, l2, parent, pick = c2[order], l2[order], parent[order], pick[order]
            prev_min = np.minimum.accumulate(np.concatenate([[np.inf], l2[:-1]]))
            front = l2 < prev_min
            cost, lat = c2[front], l2[front]
            choices = np.concatenate([choices[parent[front]], pick[front][:, None]], axis=1)
        return choices, lat

    def min_cost_meeting_sla(self) -> np.ndarray | None:
        """Exact cheapest worker vector whose best latency meets the SLA (None if none)."""
        sla = self.problem.sla_s * (1 + 1e-12)
        front = self._front(lambda cost, lat: lat <= sla)
        return None if front is None else front[0][0]

    def fastest_within_budget(self) -> np.ndarray | None:
        """Exact lowest-latency stable worker vector within the budget (None if none)."""
        budget = self.problem.budget * (1 + 1e-12)
        front = self._front(lambda cost, lat: cost <= budget)
        return None if front is None else front[0][-1]

    def local_search(self, start: np.ndarray, radius: int, max_steps: int = 10_000) -> np.ndarray:
        """Best-improvement search over the box of neighbours within ``radius`` per stage."""
        s = len(start)
        r = radius if (2 * radius + 1) ** s <= 20_000 else 1
        if 3**s > 20_000:  # many stages: single moves and pairwise transfers only
            offs = []
            for i in range(s):
                for d in range(-radius, radius + 1):
                    if d:
                        e = np.zeros(s, dtype=np.int64)
                        e[i] = d
                        offs.append(e)
            for i, j in itertools.permutations(range(s), 2):
                e = np.zeros(s, dtype=np.int64)
                e[i], e[j] = 1, -1
                offs.append(e)
            offsets = np.array(offs)
        else:
            offsets = np.array(list(itertools.product(range(-r, r + 1), repeat=s)), dtype=np.int64)
        cur = start.copy()
        cur_obj, cur_ok = self.score(cur[None, :])
        best = cur_obj[0] if cur_ok[0] else np.inf
        for _ in range(max_steps):
            cand = np.clip(cur[None, :] + offsets, self.lo, self.hi)
            obj, ok = self.score(cand)
            obj = np.where(ok, obj, np.inf)
            k = int(np.argmin(obj))
            if not obj[k] < best - 1e-15 * max(1.0, abs(best)):
                break
            best, cur = obj[k], cand[k]
        return cur


class StageAllocation(BaseModel):
    """One stage of a recommended allocation, ready for the runtime."""

    model_config = ConfigDict(frozen=True)
    name: str
    workers: int
    batch: int
    max_delay_ms: float  # time to fill a batch at the arrival rate: the batch flush timeout
    load: float  # offered load in workers at this batch size


class Allocation(BaseModel):
    """The answer for one problem: the allocation and what the model predicts for it.

    When ``feasible`` is false, ``binding`` names the constraint that cannot be met
    and ``stages`` is the allocation closest to feasible (it meets every constraint
    except the binding one where possible), never a silent best effort.
    """

    model_config = ConfigDict(frozen=True)
    feasible: bool
    binding: str | None
    reason: str | None
    stages: list[StageAllocation]
    latency_s: float
    latency_p99_s: float
    cost: float
    reliability: float
    objective: float
    min_cost_for_sla: float | None
    relaxed_objective: float | None


def _allocation(
    problem: Problem,
    w: np.ndarray,
    b: np.ndarray,
    feasible: bool,
    binding: str | None,
    reason: str | None,
    min_cost: float | None,
    relaxed: float | None,
) -> Allocation:
    pred = predict(problem, [int(x) for x in w], [int(x) for x in b])
    lam = problem.arrival_rate
    stages = [
        StageAllocation(
            name=st.name,
            workers=int(w[i]),
            batch=int(b[i]),
            max_delay_ms=float(b[i]) / lam * 1000.0,
            load=pred.stage_load[i],
        )
        for i, st in enumerate(problem.stages)
    ]
    return Allocation(
        feasible=feasible,
        binding=binding,
        reason=reason,
        stages=stages,
        latency_s=pred.latency_s,
        latency_p99_s=pred.latency_p99_s,
        cost=pred.cost,
        reliability=pred.reliability,
        objective=pred.objective,
        min_cost_for_sla=min_cost,
        relaxed_objective=relaxed,
    )


def integer_solution(
    problem: Problem, relaxed_w: np.ndarray | None = None, relaxed_obj: float | None = None
) -> Allocation:
    """Integer allocation from a relaxed optimum, with an exact feasibility verdict."""
    im = IntegerModel.build(problem)
    names = [st.name for st in problem.stages]
    # stages with no stable allocation at all: arrival rate beyond any allocation
    for i, t in enumerate(im.tables):
        if not np.isfinite(t.latency).any():
            w = im.hi.copy()
            b = np.array([st.batch[1] for st in problem.stages])
            load = problem.arrival_rate * (problem.stages[i].a / b[i] + problem.stages[i].c)
            return _allocation(
                problem, w, b, False, f"stability:{names[i]}",
                f"stage {names[i]} offers a load of {load:.4g} workers even at the largest "
                f"batch; a stable queue needs more workers than its load, and its bound is "
                f"{int(im.hi[i])}",
                None, relaxed_obj,
            )  # fmt: skip
    fastest = np.array([int(t.workers[np.argmin(t.latency)]) for t in im.tables])
    min_latency = sum(float(np.min(t.latency)) for t in im.tables)
    if min_latency > problem.sla_s * (1 + 1e-12):
        within_budget = im.fastest_within_budget()  # closest to the SLA, other limits kept
        closest = fastest if within_budget is None else within_budget
        return _allocation(
            problem, closest, im.batch_for(closest), False, "sla",
            f"the lowest latency any allocation reaches is {min_latency * 1e3:.4g} ms, "
            f"above the SLA of {problem.sla} ms",
            None, relaxed_obj,
        )  # fmt: skip
    cheapest = im.min_cost_meeting_sla()
    assert cheapest is not None  # the fastest allocation meets the SLA
    min_cost = float(cheapest @ im.prices)
    if min_cost > problem.budget * (1 + 1e-12):
        stable_min = np.array([int(t.workers[np.isfinite(t.latency)][0]) for t in im.tables])
        stable_cost = float(stable_min @ im.prices)
        reason = (
            f"keeping every stage stable costs at least {stable_cost:.6g}, over the budget"
            if stable_cost > problem.budget
            else f"meeting the SLA costs at least {min_cost:.6g}, over the budget "
            f"of {problem.budget:.6g}"
        )
        return _allocation(
            problem, cheapest, im.batch_for(cheapest), False, "budget", reason,
            min_cost, relaxed_obj,
        )  # fmt: skip
    seeds = [cheapest]
    if relaxed_w is not None:
        fl = np.clip(np.floor(relaxed_w).astype(np.int64), im.lo, im.hi)
        s = len(fl)
        if s <= 10:
            combos = np.array(list(itertools.product((0, 1), repeat=s)), dtype=np.int64)
            rounded = np.clip(fl[None, :] + combos, im.lo, im.hi)
        else:
            rounded = np.clip(np.round(relaxed_w).astype(np.int64), im.lo, im.hi)[None, :]
        obj, ok = im.score(rounded)
        if ok.any():
            seeds.append(rounded[int(np.argmin(np.where(ok, obj, np.inf)))])
    best_w, best_obj = cheapest, math.inf
    for seed_w in seeds:
        w = im.local_search(seed_w, radius=2)
        obj, ok = im.score(w[None, :])
        if ok[0] and obj[0] < best_obj:
            best_w, best_obj = w, float(obj[0])
    return _allocation(
        problem, best_w, im.batch_for(best_w), True, None, None, min_cost, relaxed_obj
    )


def solve(
    problems: Sequence[Problem],
    iterations: int = 1000,
    starts: int = 16,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> list[Allocation]:
    """Solve many problems: one batched relaxed solve, then the integer phase per problem."""
    batch = ProblemBatch.from_problems(problems, device=device or default_device(), dtype=dtype)
    res = solve_relaxed(batch, iterations=iterations, starts=starts, seed=seed)
    ws = res.workers.cpu().numpy()
    objs = res.objective.cpu().numpy()
    out = []
    for i, prob in enumerate(problems):
        n = len(prob.stages)
        robj = float(objs[i]) if np.isfinite(objs[i]) else None
        out.append(integer_solution(prob, ws[i, :n], robj))
    return out


def recommend(problem: Problem, iterations: int = 1000) -> Allocation:
    """The allocation to hand to the runtime for one problem."""
    return solve([problem], iterations=iterations)[0]
