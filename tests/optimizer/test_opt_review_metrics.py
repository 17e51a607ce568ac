"""``optimize --metrics`` on batches of one size: say so, and keep that batch size.

Why: with every batch the same size only ``a + c·b`` is measured; the fit broke the
tie with ``a = 0``, which makes batches of one look free, and the command confidently
recommended ``batch: 1`` (a 20 µs latency) from data that says nothing about it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from gpu_engine.cli import main as gpu_engine_main
from gpu_engine.optimizer.fit import fit_metrics, problem_from_metrics, read_metrics

LAM = 200_000.0
TRUE = {"validate": (2e-4, 1e-6), "aggregate": (5e-4, 2e-6), "emit": (1e-4, 5e-7)}


def _write(out: Path, rows: np.ndarray, seed: int = 0) -> dict[str, float]:
    """batches.parquet with the given rows per batch; returns each stage's mean seconds."""
    rng = np.random.default_rng(seed)
    t = 1.7e9 + np.cumsum(rows / LAM)
    frames, means = [], {}
    for name, (a, c) in TRUE.items():
        secs = a + c * rows + rng.normal(0, 2e-5, rows.size)
        means[name] = float(secs.mean())
        frames.append(
            pd.DataFrame(
                {
                    "time_s": t,
                    "stage": name,
                    "rows": rows.astype(np.int64),
                    "seconds": secs,
                    "workers": np.ones(rows.size, dtype=np.int64),
                }
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    pd.concat(frames).to_parquet(out / "batches.parquet")
    return means


def _oracle(lam: float, service: list[float], b: int, sla: float, budget: float) -> float:
    """Best objective over every worker vector (1..64 per stage) at the fixed batch b.

    Erlang B from scipy's Poisson distribution; fill (b-1)/(2λ); weights 0.4/0.3/0.3,
    price 0.05, failure probability 0.01: the command's defaults.
    """
    w = np.arange(1, 65)
    lat = []
    for s in service:
        load = lam * s / b
        with np.errstate(all="ignore"):
            bl = stats.poisson.pmf(w, load) / stats.poisson.cdf(w, load)
            cw = w * bl / (w - load * (1 - bl))
            lat.append(np.where(load < w, (b - 1) / (2 * lam) + cw * s / (w - load) + s, np.inf))
    total = lat[0][:, None, None] + lat[1][None, :, None] + lat[2][None, None, :]
    n = w[:, None, None] + w[None, :, None] + w[None, None, :]
    rel1 = 1 - 0.01**w
    rel = rel1[:, None, None] * rel1[None, :, None] * rel1[None, None, :]
    ok = (total <= sla) & (0.05 * n <= budget)
    obj = 0.4 * total / sla + 0.3 * 0.05 * n / budget + 0.3 * (1 - rel)
    return float(obj[ok].min())


def test_one_batch_size_keeps_it_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    means = _write(tmp_path / "metrics", np.full(50, 2000))
    rc = gpu_engine_main(
        ["optimize", "--metrics", str(tmp_path / "metrics"), "--budget", "2", "--sla", "50ms",
         "--iterations", "200"]
    )  # fmt: skip
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 0
    rec = out["recommended"]
    assert [s["batch"] for s in rec["stages"]] == [2000, 2000, 2000]
    (warning,) = out["warnings"]
    assert "did not vary enough" in warning and "all 50 batches had 2000 rows" in warning
    assert "batching.max_rows" in warning and warning in captured.err
    for s in out["fit"]["stages"]:
        assert s["a"] is None and s["c"] is None and s["batch_identified"] is False
        assert s["service_s_at_batch"] == pytest.approx(means[s["name"]], rel=1e-9)
    lam = out["fit"]["arrival_rate"]
    ref = _oracle(lam, [means[n] for n in TRUE], 2000, 0.05, 2.0)
    assert rec["feasible"] and rec["objective"] == pytest.approx(ref, rel=1e-9)


def test_one_odd_batch_is_not_variation() -> None:
    """50 full batches and the last, part-full one: still only one size measured."""
    rows = np.r_[np.full(49, 2000), 37]
    fit = fit_metrics(pd.DataFrame(_frame(rows)))
    assert not any(s.identified for s in fit.stages)
    problem = problem_from_metrics(fit, budget=2.0, sla="50ms")
    assert all(st.batch == (2000, 2000) for st in problem.stages)


def test_varied_batch_sizes_are_fitted_and_free(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _write(tmp_path / "m", rng.integers(200, 3000, 300))
    fit = fit_metrics(read_metrics(tmp_path / "m"))
    assert all(s.identified for s in fit.stages) and fit.warnings() == []
    for s in fit.stages:  # the split is recovered, so the batch size may move
        assert s.fit.a == pytest.approx(TRUE[s.name][0], rel=0.1)
    problem = problem_from_metrics(fit, budget=2.0, sla="50ms")
    assert all(st.batch == (1, 65536) for st in problem.stages)


def _frame(rows: np.ndarray) -> dict[str, np.ndarray]:
    n = rows.size
    stage = np.repeat(list(TRUE), n)
    r = np.tile(rows, len(TRUE))
    secs = np.concatenate([a + c * rows for a, c in TRUE.values()])
    t = np.tile(1.7e9 + np.cumsum(rows / LAM), len(TRUE))
    return {"time_s": t, "stage": stage, "rows": r, "seconds": secs, "workers": np.ones(r.size)}
