"""M/M/c queue maths (Erlang B and C) in numpy and torch.

Erlang B is computed with the stable recursion ``B(k) = A·B(k-1) / (k + A·B(k-1))``
(``B(0) = 1``), which never forms factorials or powers and so stays in (0, 1]
for any offered load. Erlang C, the mean wait and the wait quantile follow
from it in closed form. The torch version is batched (any shape), runs the
recursion without building an autograd graph, and supplies the analytic
derivative ``dB/dA = B·(k/A − 1 + B)`` instead, so gradients cost one step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]


def erlang_b(servers: ArrayLike, load: ArrayLike) -> FloatArray:
    """Blocking probability of M/M/k/k with offered load ``load`` (Erlangs); broadcasts."""
    k_arr, a_arr = np.broadcast_arrays(
        np.asarray(servers, dtype=np.int64), np.asarray(load, dtype=np.float64)
    )
    if np.any(k_arr < 0) or np.any(a_arr < 0):
        raise ValueError("servers and load must be non-negative")
    b = np.ones(a_arr.shape)
    kmax = int(k_arr.max()) if k_arr.size else 0
    for j in range(1, kmax + 1):
        ab = a_arr * b
        b = np.where(j <= k_arr, ab / (j + ab), b)
    return b


def erlang_c(servers: ArrayLike, load: ArrayLike) -> FloatArray:
    """Probability that an arrival waits in M/M/k (1 where the queue is unstable)."""
    k = np.asarray(servers, dtype=np.float64)
    a = np.asarray(load, dtype=np.float64)
    b = erlang_b(servers, load)
    stable = a < k
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(stable, k * b / (k - a * (1.0 - b)), 1.0)
    return np.asarray(c, dtype=np.float64)


def mean_wait(servers: ArrayLike, load: ArrayLike, service: ArrayLike) -> FloatArray:
    """Mean queueing delay Wq of M/M/k with mean service time ``service`` (inf if unstable)."""
    k = np.asarray(servers, dtype=np.float64)
    a = np.asarray(load, dtype=np.float64)
    s = np.asarray(service, dtype=np.float64)
    c = erlang_c(servers, load)
    with np.errstate(divide="ignore", invalid="ignore"):
        w = np.where(a < k, c * s / (k - a), np.inf)
    return np.asarray(w, dtype=np.float64)


def wait_quantile(
    servers: ArrayLike, load: ArrayLike, service: ArrayLike, q: float = 0.99
) -> FloatArray:
    """q-quantile of the M/M/k queueing delay from the tail P(Wq > t) = C·exp(−(k−A)t/s)."""
    k = np.asarray(servers, dtype=np.float64)
    a = np.asarray(load, dtype=np.float64)
    s = np.asarray(service, dtype=np.float64)
    c = erlang_c(servers, load)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(c > 1.0 - q, s * np.log(c / (1.0 - q)) / (k - a), 0.0)
        t = np.where(a < k, t, np.inf)
    return np.asarray(t, dtype=np.float64)


class _ErlangB(torch.autograd.Function):
    """Erlang B with the recursion run graph-free and the closed-form derivative in A."""

    @staticmethod
    def forward(ctx: Any, servers: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
        k = servers.to(load.dtype)
        flat_k, flat_a = k.reshape(-1), load.reshape(-1)
        # Sort by server count so step j only touches the suffix with k ≥ j: the work is
        # the sum of the k's rather than (number of queues) × max k.
        k_sorted, perm = torch.sort(flat_k)
        a_sorted = flat_a[perm]
        b = torch.ones_like(a_sorted)
        kmax = int(k_sorted[-1].item()) if k_sorted.numel() else 0
        if kmax > 0:
            steps = torch.arange(1, kmax + 1, dtype=k_sorted.dtype, device=k_sorted.device)
            firsts = torch.searchsorted(k_sorted, steps).tolist()
            for j, first in enumerate(firsts, start=1):
                seg = b[first:]
                ab = a_sorted[first:] * seg
                seg.copy_(ab / (ab + j))
        out = torch.empty_like(b)
        out[perm] = b
        out = out.reshape(load.shape)
        ctx.save_for_backward(k, load, out)
        return out

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[None, torch.Tensor]:
        (grad,) = grads
        k, load, b = ctx.saved_tensors
        safe = torch.where(load > 0, load, torch.ones_like(load))
        d = torch.where(load > 0, b * (k / safe - 1.0 + b), (k == 1).to(load.dtype))
        return None, grad * d


def erlang_b_torch(servers: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
    """Batched, differentiable (in ``load``) Erlang B; ``servers`` holds whole numbers."""
    servers, load = torch.broadcast_tensors(servers, load)
    out: torch.Tensor = _ErlangB.apply(servers, load)
    return out


def erlang_c_torch(servers: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
    """Batched Erlang C; callers must keep ``load < servers`` (stable queues)."""
    k = servers.to(load.dtype)
    b = erlang_b_torch(servers, load)
    return k * b / (k - load * (1.0 - b))
