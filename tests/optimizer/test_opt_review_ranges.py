"""Problems at the edges of float64: a plain refusal or a correct verdict, never a traceback.

Why: ``arrival_rate: 1e-300`` ended in ``ValueError: cannot convert float NaN to
integer`` (an inf gradient turned Adam's state into NaN), a batch bound of 10^20 in an
OverflowError, and a stage whose load no allocation carries (λ = 10^12) ran the Erlang
recursion over millions of servers at every step, which never finished.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gpu_engine.cli import main as gpu_engine_main
from gpu_engine.optimizer import model
from gpu_engine.optimizer.problem import Problem
from gpu_engine.optimizer.solver import solve

BASE = {
    "arrival_rate": 1000.0,
    "budget": 2.0,
    "sla": "50ms",
    "stages": [{"name": "v", "a": 0.001, "c": 2e-6}],
}


def _yaml(tmp_path: Path, rate: str, batch: str = "[1, 65536]") -> Path:
    f = tmp_path / "p.yaml"
    f.write_text(
        f"arrival_rate: {rate}\nbudget: 2\nsla: 50ms\n"
        f"stages: [{{name: v, a: 0.001, c: 0.000002, batch: {batch}}}]\n"
    )
    return f


@pytest.mark.parametrize(
    ("rate", "batch", "where", "why"),
    [
        ("1e-300", "[1, 65536]", "arrival_rate", "below 1e-06"),
        ("1e-7", "[1, 65536]", "arrival_rate", "one event per 11.6 days"),
        ("1000", "[1, 100000000000000000000]", "stages[0]", "up to 2147483647"),
    ],
)
def test_out_of_range_values_are_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rate: str, batch: str, where: str, why: str
) -> None:
    assert gpu_engine_main(["optimize", "--problem", str(_yaml(tmp_path, rate, batch))]) == 2
    err = capsys.readouterr().err
    assert f"error: {where}: " in err and why in err and "Value error" not in err


def _problem(**kw: object) -> Problem:
    stage = {**BASE["stages"][0], **kw.pop("stage", {})}  # type: ignore[dict-item]
    return Problem.model_validate({**BASE, **kw, "stages": [stage]})


@pytest.fixture
def servers_seen(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Fail fast (rather than hang) if the relaxed model recurses past the worker bound."""
    real = model.erlang_b_torch
    seen: list[float] = []

    def guarded(servers: torch.Tensor, load: torch.Tensor) -> torch.Tensor:
        seen.append(float(servers.max()))
        if seen[-1] > 65:
            raise AssertionError(f"Erlang B over {seen[-1]:.3g} servers; the bound is 64")
        return real(servers, load)

    monkeypatch.setattr(model, "erlang_b_torch", guarded)
    return seen


@pytest.mark.parametrize(
    ("problem", "feasible", "binding"),
    [
        # oracle: one worker at b = 1 carries λ(a + c) = 1e-6·0.001 ≪ 1 and waits no fill
        (_problem(arrival_rate=1e-6), True, None),
        # oracle: the least load, λ(a/65536 + c), is 2e6 workers, over the bound of 64
        (_problem(arrival_rate=1e12), False, "stability:v"),
        (_problem(stage={"a": 1e300}), False, "stability:v"),
        # oracle: one worker costs 0.05, over a budget of 1e-300
        (_problem(budget=1e-300), False, "budget"),
        (_problem(stage={"price": 1e300}), False, "budget"),
    ],
)
def test_extreme_but_valid_problems_get_the_exact_verdict(
    servers_seen: list[float], problem: Problem, feasible: bool, binding: str | None
) -> None:
    [alloc] = solve([problem], iterations=100, device="cpu")
    assert (alloc.feasible, alloc.binding) == (feasible, binding)
    assert servers_seen  # the relaxed solve ran (and stayed within the bound)
