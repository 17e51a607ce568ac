"""Model formulas against brute force, problem-file validation and the optimize command."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gpu_engine.cli import main as gpu_engine_main
from gpu_engine.optimizer.model import ProblemBatch, evaluate, predict
from gpu_engine.optimizer.problem import ProblemError, load_problem, parse_problem
from gpu_engine.optimizer.queueing import mean_wait

EXAMPLE = """\
arrival_rate: 200000          # events/s
weights: {latency: 0.4, cost: 0.3, reliability: 0.3}
budget: 2.0                   # upper bound on the sum of worker prices
sla: 50ms                     # upper bound on end-to-end mean latency
failure_prob: 0.01            # per worker
stages:
  - {name: validate,  a: 0.0002, c: 1.0e-7, price: 0.05, workers: [1, 64], batch: [1, 65536]}
  - {name: aggregate, a: 0.0005, c: 3.0e-7, price: 0.05, workers: [1, 64], batch: [1, 65536]}
"""


def _write(tmp_path: Path, text: str) -> Path:
    f = tmp_path / "problem.yaml"
    f.write_text(text)
    return f


def test_integer_points_match_the_queueing_formulas() -> None:
    p = load_problem_text(EXAMPLE)
    w, b = [3, 4], [200, 500]
    pred = predict(p, w, b)
    lam = p.arrival_rate
    expected = 0.0
    for st, wi, bi in zip(p.stages, w, b, strict=True):
        s = st.a + st.c * bi
        expected += (bi - 1) / (2 * lam) + float(mean_wait(wi, lam * s / bi, s)) + s
    assert pred.latency_s == pytest.approx(expected, rel=1e-12)
    assert pred.cost == pytest.approx(0.05 * 7)
    batch = ProblemBatch.from_problems([p], device="cpu")
    ev = evaluate(
        batch, torch.tensor([w], dtype=torch.float64), torch.tensor([b], dtype=torch.float64)
    )
    assert float(ev.latency[0]) == pytest.approx(expected, rel=1e-12)
    # between integers the wait is the linear interpolation of the two ends
    ev_mid = evaluate(
        batch,
        torch.tensor([[3.25, 4.0]], dtype=torch.float64),
        torch.tensor([b], dtype=torch.float64),
    )
    hi = predict(p, [4, 4], b).latency_s
    assert float(ev_mid.latency[0]) == pytest.approx(0.75 * pred.latency_s + 0.25 * hi, rel=1e-12)


def test_reliability_equals_enumeration_of_failure_states() -> None:
    p = load_problem_text(EXAMPLE.replace("failure_prob: 0.01", "failure_prob: 0.2"))
    w = [2, 3]
    q = 0.2
    total = 0.0
    for state in itertools.product((0, 1), repeat=sum(w)):  # 1 = failed
        prob = np.prod([q if s else 1 - q for s in state])
        first, second = state[: w[0]], state[w[0] :]
        if not all(first) and not all(second):
            total += prob
    assert predict(p, w, [100, 100]).reliability == pytest.approx(total, rel=1e-12)


def test_padded_stages_change_nothing() -> None:
    p2 = load_problem_text(EXAMPLE)
    p3 = load_problem_text(EXAMPLE + "  - {name: emit, a: 0.0001, c: 1.0e-7}\n")
    both = ProblemBatch.from_problems([p2, p3], device="cpu")
    alone = ProblemBatch.from_problems([p2], device="cpu")
    w = torch.tensor([[2.5, 3.0, 1.0], [2.5, 3.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([[100.0, 300.0, 1.0], [100.0, 300.0, 50.0]], dtype=torch.float64)
    ev_both = evaluate(both, w, b)
    ev_alone = evaluate(alone, w[:1, :2], b[:1, :2])
    assert float(ev_both.objective[0]) == pytest.approx(float(ev_alone.objective[0]), rel=1e-14)


def load_problem_text(text: str):
    import yaml

    return parse_problem(yaml.safe_load(text))


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (
            (
                "workers: [1, 64], batch: [1, 65536]}\n  - {name: aggregate",
                "workers: [1, 64], bogus: 1, batch: [1, 65536]}\n  - {name: aggregate",
            ),
            "stages[0].bogus",
        ),
        (("sla: 50ms", "sla: fifty"), "sla"),
        (
            ("workers: [1, 64], batch: [1, 65536]}\n", "workers: [9, 2], batch: [1, 65536]}\n"),
            "stages[1]",
        ),
        (("latency: 0.4", "latency: -1"), "weights.latency"),
    ],
)
def test_bad_input_names_the_field_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: tuple[str, str], path: str
) -> None:
    text = EXAMPLE.replace(*edit)
    assert text != EXAMPLE
    with pytest.raises(ProblemError, match=path.replace("[", r"\[").replace("]", r"\]")):
        load_problem(_write(tmp_path, text))
    assert gpu_engine_main(["optimize", "--problem", str(_write(tmp_path, text))]) == 2
    assert path in capsys.readouterr().err


def test_optimize_problem_file_prints_the_allocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = gpu_engine_main(
        ["optimize", "--problem", str(_write(tmp_path, EXAMPLE)), "--iterations", "300"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["feasible"] is True and out["binding"] is None
    p = load_problem_text(EXAMPLE)
    w = [s["workers"] for s in out["stages"]]
    b = [s["batch"] for s in out["stages"]]
    assert all(isinstance(x, int) for x in w + b)
    pred = predict(p, w, b)  # the printed numbers are the model's for that allocation
    assert out["latency_s"] == pytest.approx(pred.latency_s) and out["cost"] == pytest.approx(
        pred.cost
    )
    assert out["reliability"] == pytest.approx(pred.reliability)
    assert out["latency_s"] <= 0.050 and out["cost"] <= 2.0
    for s in out["stages"]:
        assert s["max_delay_ms"] == pytest.approx(s["batch"] / 200_000 * 1000)


def test_optimize_infeasible_exits_1_with_binding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = EXAMPLE.replace("budget: 2.0", "budget: 0.06")  # two stages need ≥ 2 workers = 0.10
    rc = gpu_engine_main(
        ["optimize", "--problem", str(_write(tmp_path, text)), "--iterations", "100"]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 1 and out["feasible"] is False and out["binding"] == "budget"
