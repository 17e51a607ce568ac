"""The shipped rules and problem examples, and the README's account of both formats.

Why: a user builds a rules file or a problem file from the README and the examples
first; an example the engine refuses, a README snippet that no longer parses, or a
default the README states that the model no longer has, would send them astray, and
nothing else would notice.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from gpu_engine.cli import main
from gpu_engine.monitor import MonitorConfig, load_monitor_config
from gpu_engine.monitor.actions import ENGINE_ACTIONS
from gpu_engine.monitor.rules import (
    AnomalyRule,
    JsonlChannel,
    ThresholdRule,
    TrendRule,
    WebhookChannel,
)
from gpu_engine.optimizer.problem import Problem, Stage, load_problem

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "gpu_engine" / "examples"
RULES_EXAMPLE = EXAMPLES / "monitor_rules.yaml"
PROBLEM_EXAMPLE = EXAMPLES / "problem.yaml"
README = (ROOT / "README.md").read_text(encoding="utf-8")

# The README's YAML blocks about the two formats say in their first line what they are.
RULES_TAG = "# gpu-engine run --monitor-config"
PROBLEM_TAG = "# gpu-engine optimize --problem"
YAML_BLOCKS = re.findall(r"```yaml\n(.*?)```", README, re.DOTALL)
RULES_BLOCKS = [b for b in YAML_BLOCKS if b.startswith(RULES_TAG)]
PROBLEM_BLOCKS = [b for b in YAML_BLOCKS if b.startswith(PROBLEM_TAG)]


def _section(start: str) -> str:
    """The README from ``start`` to the next top-level heading."""
    assert start in README, f"README has no {start!r}"
    return README.split(start, 1)[1].split("\n## ", 1)[0]


RULES_SECTION = _section("### Rules file")
PROBLEM_SECTION = _section("**Problem file.**")


def _table(section: str) -> list[tuple[list[str], str]]:
    """``(keys, default)`` of each ``| `key` | default | meaning |`` row of a section."""
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`"):
            rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[1]))
    return rows


# -- the example files -------------------------------------------------------------------


def test_the_rules_example_loads_as_a_run_loads_it() -> None:
    # as `gpu-engine run --monitor-config` does: metric and action names checked
    cfg = load_monitor_config(RULES_EXAMPLE)
    assert {r.kind for r in cfg.rules} == {"threshold", "trend", "anomaly"}
    assert {r.detector.kind for r in cfg.rules if isinstance(r, AnomalyRule)} >= {
        "cusum",
        "robust_z",
    }
    assert any(r.expr.startswith("window:") for r in cfg.rules if isinstance(r, ThresholdRule))
    kinds = {type(c) for c in cfg.channels.values()}
    assert {JsonlChannel, WebhookChannel} <= kinds
    assert set(cfg.escalation) == {"critical", "warning", "info"}
    assert any(step.escalate for step in cfg.escalation["critical"])
    assert cfg.inhibit
    actions = {a.name: a.params for r in cfg.rules for a in r.actions}
    assert set(actions) == set(ENGINE_ACTIONS)
    for name, params in actions.items():  # written with parameters, every one it takes
        assert set(params) == set(ENGINE_ACTIONS[name]), name


def test_check_rules_accepts_the_rules_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "check-rules", str(RULES_EXAMPLE)]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_rules_refuses_an_action_written_as_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The form the README warns against is refused, not taken for something else."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - name: Slow\n"
        "    kind: threshold\n"
        "    expr: batch_seconds_p99 > 0.5\n"
        "    actions: [{run_optimizer: {budget: 2.0, sla: 50ms}}]\n"
    )
    assert main(["alerts", "check-rules", str(path)]) == 1
    assert "actions[0].run_optimizer: unknown field" in capsys.readouterr().err


def test_the_problem_example_loads() -> None:
    problem = load_problem(PROBLEM_EXAMPLE)
    assert len(problem.stages) >= 2
    assert {s.device for s in problem.stages} == {"cpu", "gpu"}
    assert any(s.price is not None for s in problem.stages)


def test_optimize_solves_the_problem_example(capsys: pytest.CaptureFixture[str]) -> None:
    # the full default run (1,000 iterations): some 6 s on 2 cores
    assert main(["optimize", "--problem", str(PROBLEM_EXAMPLE)]) == 0
    out = json.loads(capsys.readouterr().out)
    problem = load_problem(PROBLEM_EXAMPLE)
    assert out["feasible"] is True
    assert [s["name"] for s in out["stages"]] == [s.name for s in problem.stages]
    assert out["cost"] <= problem.budget and out["latency_s"] <= problem.sla_s


# -- the README --------------------------------------------------------------------------


def test_the_readme_has_a_block_of_each_format() -> None:
    assert RULES_BLOCKS and PROBLEM_BLOCKS
    assert "gpu-engine alerts check-rules" in RULES_SECTION
    for example in (RULES_EXAMPLE, PROBLEM_EXAMPLE):
        assert str(example.relative_to(ROOT)) in README


def test_every_readme_block_of_these_formats_is_tagged() -> None:
    """An untagged block about either format would escape the loaders below."""
    formats = {"rules", "channels", "escalation", "inhibit", "monitor", "arrival_rate", "stages"}
    for block in YAML_BLOCKS:
        data = yaml.safe_load(block)
        if isinstance(data, dict) and formats & set(data):
            assert block.startswith((RULES_TAG, PROBLEM_TAG)), block[:200]


@pytest.mark.parametrize("block", RULES_BLOCKS, ids=lambda b: f"rules-{RULES_BLOCKS.index(b)}")
def test_a_readme_rules_block_loads(block: str, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(block)
    cfg = load_monitor_config(path)  # metric and action names checked, as for a run
    assert cfg.rules


@pytest.mark.parametrize(
    "block", PROBLEM_BLOCKS, ids=lambda b: f"problem-{PROBLEM_BLOCKS.index(b)}"
)
def test_a_readme_problem_block_loads(block: str, tmp_path: Path) -> None:
    path = tmp_path / "problem.yaml"
    path.write_text(block)
    assert load_problem(path).stages


# A minimal valid instance of each model whose keys the README's tables list.
_RULE = {"name": "R", "kind": "threshold", "expr": "batch_seconds_p99 > 1"}
_STAGE = {"name": "s", "a": 0.001, "c": 0.0}
_PROBLEM = {"arrival_rate": 1000, "budget": 1.0, "sla": "50ms", "stages": [_STAGE]}


def _model(key: str, section: str) -> tuple[type[BaseModel], dict[str, Any], str]:
    """The model a documented key belongs to, a minimal instance of it, the key in it."""
    if section == "rules":
        if key.startswith("rules[]."):
            return ThresholdRule, _RULE, key.removeprefix("rules[].")
        return MonitorConfig, {}, key
    if key.startswith("stages[]."):
        return Stage, _STAGE, key.removeprefix("stages[].")
    return Problem, _PROBLEM, key


def _fields(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


DOCUMENTED = [
    (section, key, default)
    for section, text in (("rules", RULES_SECTION), ("problem", PROBLEM_SECTION))
    for keys, default in _table(text)
    for key in keys
]


def test_the_readme_tables_list_keys() -> None:
    assert len([d for d in DOCUMENTED if d[0] == "rules"]) >= 15
    assert len([d for d in DOCUMENTED if d[0] == "problem"]) >= 10


@pytest.mark.parametrize(("section", "key", "default"), DOCUMENTED)
def test_a_documented_key_exists_with_its_documented_default(
    section: str, key: str, default: str
) -> None:
    model, minimal, field = _model(key, section)
    base = {**minimal}
    if model is ThresholdRule:  # the keys every kind has
        for kind in (ThresholdRule, TrendRule, AnomalyRule):
            assert field in _fields(kind), f"{key} is not a key of {kind.__name__}"
    assert field in _fields(model), f"{key} is not a key of {model.__name__}"
    if default == "required":
        base.pop(field, None)
        with pytest.raises(ValidationError, match=field):
            model.model_validate(base)
        return
    value = re.fullmatch(r"`([^`]+)`", default)
    if value is None:  # e.g. "from `prices`": said in words
        return
    given = model.model_validate({**base, field: yaml.safe_load(value.group(1))})
    assert given == model.model_validate(base), f"{key}: the default is not {value.group(1)}"
