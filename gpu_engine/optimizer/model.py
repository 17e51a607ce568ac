"""The pipeline model: latency, cost and reliability of an allocation, batched in torch.

Stage ``i`` with ``w`` workers and batch size ``b`` is an M/M/w queue of batches:
batch arrival rate ``λ/b``, service time ``s = a + c·b``, offered load
``A = λ·s/b`` workers. Its mean latency is ``(b−1)/(2λ)`` (the batch-fill wait:
the first event of a batch waits ``(b−1)/λ`` for the last, which waits none, so a
batch of one waits nothing) + ``Wq`` (Erlang C) + ``s``; the pipeline's is the sum
over stages.

For gradients the worker count is real and ``Wq`` is interpolated linearly
between ``floor(w)`` and ``floor(w)+1``. The relaxed stability constraint is
``w ≥ A + 1``, which keeps ``floor(w) > A`` so both interpolation ends are
stable queues; outside it ``Wq`` is extended as a constant in ``w`` (finite), so
optimisers that step outside see a finite value and the constraint pulls them
back (where ``A + 1`` exceeds the stage's worker bound, that constant is ``s``,
Erlang C's large-load limit, rather than a recursion over ``A`` servers).
Integer allocations are judged exactly (``w > A``) by ``integer_stage_latency``.

Two variants share the code: ``"erlang"`` (the model above; objective uses
``1 − R``) and ``"convex"`` (each worker an M/M/1 queue fed ``1/w`` of the
batches, ``Wq = A·s/(w − A)``, objective uses ``−log R``), which is convex in
``w`` at fixed batch sizes and so can be certified by cvxpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import torch

from gpu_engine.optimizer.problem import Problem
from gpu_engine.optimizer.queueing import erlang_b, erlang_b_torch, wait_quantile

Variant = Literal["erlang", "convex"]


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class ProblemBatch:
    """P problems of up to S stages as tensors with a leading batch dimension.

    Problems with fewer stages are padded with inactive stages (``mask`` false)
    that add no latency, cost or unreliability.
    """

    lam: torch.Tensor  # (P,) events/s
    sla: torch.Tensor  # (P,) seconds
    budget: torch.Tensor  # (P,)
    weights: torch.Tensor  # (P, 3) latency, cost, reliability
    log_fail: torch.Tensor  # (P,) log of the per-worker failure probability
    a: torch.Tensor  # (P, S)
    c: torch.Tensor  # (P, S)
    price: torch.Tensor  # (P, S)
    w_lo: torch.Tensor  # (P, S)
    w_hi: torch.Tensor  # (P, S)
    b_lo: torch.Tensor  # (P, S)
    b_hi: torch.Tensor  # (P, S)
    mask: torch.Tensor  # (P, S) bool

    @classmethod
    def from_problems(
        cls,
        problems: Sequence[Problem],
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> ProblemBatch:
        """Stack problems into one batch on ``device`` (default: GPU if present)."""
        if not problems:
            raise ValueError("no problems to batch")
        dev = torch.device(device) if device is not None else default_device()
        n, s = len(problems), max(len(p.stages) for p in problems)
        arr = {k: np.zeros((n, s)) for k in ("a", "c", "price")}
        for k in ("w_lo", "w_hi", "b_lo", "b_hi"):
            arr[k] = np.ones((n, s))
        mask = np.zeros((n, s), dtype=bool)
        for i, p in enumerate(problems):
            for j, st in enumerate(p.stages):
                arr["a"][i, j], arr["c"][i, j] = st.a, st.c
                arr["price"][i, j] = p.stage_price(j)
                arr["w_lo"][i, j], arr["w_hi"][i, j] = st.workers
                arr["b_lo"][i, j], arr["b_hi"][i, j] = st.batch
                mask[i, j] = True
        fail = np.array([max(p.failure_prob, 1e-300) for p in problems])

        def t(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(x, dtype=dtype, device=dev)

        return cls(
            lam=t(np.array([p.arrival_rate for p in problems])),
            sla=t(np.array([p.sla_s for p in problems])),
            budget=t(np.array([p.budget for p in problems])),
            weights=t(
                np.array(
                    [[p.weights.latency, p.weights.cost, p.weights.reliability] for p in problems]
                )
            ),
            log_fail=t(np.log(fail)),
            mask=torch.as_tensor(mask, device=dev),
            **{k: t(v) for k, v in arr.items()},
        )

    def repeat(self, r: int) -> ProblemBatch:
        """Each problem repeated ``r`` times consecutively (for multi-start solves)."""
        return ProblemBatch(
            **{f.name: getattr(self, f.name).repeat_interleave(r, dim=0) for f in fields(self)}
        )

    def to(self, device: torch.device | str) -> ProblemBatch:
        return ProblemBatch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def size(self) -> int:
        return int(self.lam.shape[0])


@dataclass(frozen=True)
class Evaluation:
    """Model outputs for a batch of (relaxed) allocations; constraints are ``g ≤ 0``."""

    stage_latency: torch.Tensor  # (P, S) seconds
    latency: torch.Tensor  # (P,)
    cost: torch.Tensor  # (P,)
    reliability: torch.Tensor  # (P,)
    objective: torch.Tensor  # (P,)
    load: torch.Tensor  # (P, S) offered load in workers
    constraints: torch.Tensor  # (P, 2 + S) normalised: sla, budget, stability per stage


def fill_wait(lam: Any, b: Any, q: float | None = None) -> Any:
    """Batch-fill wait at batch size ``b`` and arrival rate ``λ``: mean, or q-quantile.

    The i-th of ``b`` events waits ``(b−i)/λ`` for the batch to fill, so the wait is
    (about) uniform on ``[0, (b−1)/λ]``: mean ``(b−1)/(2λ)``, q-quantile ``q·(b−1)/λ``.
    Not ``b/(2λ)``: that charges a batch of one half an inter-arrival time, which at
    low rates exceeds any SLA. Works on floats, numpy arrays and torch tensors alike.
    """
    span = (b - 1.0) / lam
    return span / 2.0 if q is None else q * span


def offered_load(batch: ProblemBatch, b: torch.Tensor) -> torch.Tensor:
    """Offered load A = λ·(a/b + c) in workers (zero on padded stages)."""
    return torch.where(batch.mask, batch.lam[:, None] * (batch.a / b + batch.c), 0.0)


def stage_latency(
    batch: ProblemBatch, w: torch.Tensor, b: torch.Tensor, variant: Variant = "erlang"
) -> torch.Tensor:
    """Mean latency of every stage (P, S) of real-valued allocations; zero on padding."""
    lam = batch.lam[:, None]
    load = offered_load(batch, b)
    service = batch.a + batch.c * b
    fill = fill_wait(lam, b)
    w_eff = torch.maximum(w, load + 1.0)
    if variant == "erlang":
        # Where even the most workers cannot carry the load, Erlang B at k = A + 1 would
        # take A recursion steps (billions at a huge λ): use its large-A limit C → 1,
        # Wq = s, instead, on safe inputs so the unused branch stays finite for autograd.
        beyond = (load + 1.0 > batch.w_hi).detach()
        k0 = torch.where(beyond, 1.0, torch.floor(w_eff).detach())
        load_e = torch.where(beyond, 0.0, load)
        w_e = torch.where(beyond, 1.0, w_eff)
        frac = w_e - k0
        b0 = erlang_b_torch(k0, load_e)
        b1 = load_e * b0 / (k0 + 1.0 + load_e * b0)
        c0 = k0 * b0 / (k0 - load_e * (1.0 - b0))
        c1 = (k0 + 1.0) * b1 / (k0 + 1.0 - load_e * (1.0 - b1))
        wq = (1.0 - frac) * c0 * service / (k0 - load_e) + frac * c1 * service / (k0 + 1.0 - load_e)
        wq = torch.where(beyond, service, wq)
    else:
        wq = load * service / (w_eff - load)
    return torch.where(batch.mask, fill + wq + service, 0.0)


def evaluate(
    batch: ProblemBatch, w: torch.Tensor, b: torch.Tensor, variant: Variant = "erlang"
) -> Evaluation:
    """Latency, cost, reliability, objective and constraints of real-valued allocations."""
    load = offered_load(batch, b)
    stage_lat = stage_latency(batch, w, b, variant)
    latency = stage_lat.sum(dim=1)
    cost = (batch.price * w * batch.mask).sum(dim=1)
    # log(1 - p^w) per stage; p^w = exp(w log p)
    log_rel = torch.where(batch.mask, torch.log1p(-torch.exp(w * batch.log_fail[:, None])), 0.0)
    reliability = torch.exp(log_rel.sum(dim=1))
    unrel = (1.0 - reliability) if variant == "erlang" else -log_rel.sum(dim=1)
    wts = batch.weights
    objective = (
        wts[:, 0] * latency / batch.sla + wts[:, 1] * cost / batch.budget + wts[:, 2] * unrel
    )
    stability = torch.where(batch.mask, (load + 1.0) / w - 1.0, -1.0)
    constraints = torch.cat(
        [(latency / batch.sla - 1.0)[:, None], (cost / batch.budget - 1.0)[:, None], stability],
        dim=1,
    )
    return Evaluation(stage_lat, latency, cost, reliability, objective, load, constraints)


# ---------------------------------------------------------------- exact integer model (numpy)


def integer_stage_latency(
    lam: float, a: float, c: float, workers: np.ndarray, batch: np.ndarray
) -> np.ndarray:
    """Exact mean latency of one stage at integer allocations (inf where unstable)."""
    w = np.asarray(workers, dtype=np.int64)
    b = np.asarray(batch, dtype=np.float64)
    service = a + c * b
    load = lam * service / b
    w_b, load_b = np.broadcast_arrays(w, load)
    bl = erlang_b(w_b, load_b)
    with np.errstate(divide="ignore", invalid="ignore"):
        cw = w_b * bl / (w_b - load_b * (1.0 - bl))
        wq = np.where(load_b < w_b, cw * service / (w_b - load_b), np.inf)
    return np.asarray(fill_wait(lam, b) + wq + service, dtype=np.float64)


@dataclass(frozen=True)
class Prediction:
    """What the model predicts for one integer allocation of one problem."""

    latency_s: float
    latency_p99_s: float
    cost: float
    reliability: float
    objective: float
    stage_latency_s: list[float]
    stage_load: list[float]
    stable: bool


def predict(problem: Problem, workers: Sequence[int], batch: Sequence[int]) -> Prediction:
    """Exact predictions for an integer allocation.

    The p99 estimate adds, per stage, the 99th percentile of the batch-fill wait
    (uniform on [0, (b−1)/λ]), of the Erlang C queueing delay and the service time;
    a sum of per-stage quantiles, so it errs on the high side.
    """
    lam = problem.arrival_rate
    w = np.asarray(workers, dtype=np.int64)
    b = np.asarray(batch, dtype=np.float64)
    a = np.array([s.a for s in problem.stages])
    c = np.array([s.c for s in problem.stages])
    service = a + c * b
    load = lam * service / b
    stage_lat = np.array(
        [
            integer_stage_latency(lam, a[i], c[i], w[i : i + 1], b[i : i + 1])[0]
            for i in range(len(w))
        ]
    )
    p99 = fill_wait(lam, b, 0.99) + wait_quantile(w, load, service, 0.99) + service
    prices = np.array([problem.stage_price(i) for i in range(len(w))])
    cost = float(prices @ w)
    pw = problem.failure_prob ** w.astype(np.float64)
    rel = float(np.prod(1.0 - pw))
    latency = float(stage_lat.sum())
    wts = problem.weights
    obj = (
        wts.latency * latency / problem.sla_s
        + wts.cost * cost / problem.budget
        + wts.reliability * (1.0 - rel)
    )
    return Prediction(
        latency_s=latency,
        latency_p99_s=float(p99.sum()),
        cost=cost,
        reliability=rel,
        objective=float(obj),
        stage_latency_s=[float(x) for x in stage_lat],
        stage_load=[float(x) for x in load],
        stable=bool(np.all(load < w)),
    )
