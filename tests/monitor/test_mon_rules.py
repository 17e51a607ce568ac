"""Rules YAML: validation with path-naming errors, defaults, selectors."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

import gpu_engine
from gpu_engine.cli import main
from gpu_engine.errors import ConfigError
from gpu_engine.monitor import MonitorConfig, load_monitor_config, parse_monitor_config
from gpu_engine.monitor.rules import BUILTIN_RULES
from gpu_engine.monitor.series import matches, parse_selector, render


def test_default_config_is_valid_and_covers_each_rule_kind() -> None:
    cfg = MonitorConfig.default()
    assert cfg.interval == 1000
    assert {r.kind for r in cfg.rules} == {"threshold", "trend", "anomaly"}
    assert {r.severity for r in cfg.rules} == {"critical", "warning", "info"}


def test_builtin_rules_name_engine_metrics_and_actions_and_ship_in_the_wheel() -> None:
    """The built-in rules live in a YAML file beside the module: a metric or action name
    the engine does not have would fail silently at run time, a file the wheel leaves out
    at import."""
    cfg = load_monitor_config(BUILTIN_RULES)  # the engine's metric and action checks
    assert cfg == MonitorConfig.default()
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["gpu_engine"]
    relative = BUILTIN_RULES.relative_to(Path(gpu_engine.__file__).parent).as_posix()
    assert any(fnmatch.fnmatch(relative, pattern) for pattern in shipped), shipped


def test_yaml_round_trip(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        """
monitor:
  interval: 2s
  channels:
    hook: {type: webhook, url: "http://127.0.0.1:9/x", timeout: 500ms}
  escalation:
    critical: [{notify: hook}, {wait: 5m}, {repeat: 2}, {escalate: log}]
  rules:
    - name: Slow
      kind: threshold
      expr: batch_seconds_p99 >= 0.25
      for: 30s
      keep_firing_for: 1m
    - name: Shift
      kind: anomaly
      metric: 'window:likes.like_rate{content="a"}'
      detector: cusum
"""
    )
    cfg = load_monitor_config(path)
    assert cfg.interval == 2000
    slow, shift = cfg.rules
    assert (slow.for_, slow.keep_firing_for, slow.op, slow.threshold) == (
        30_000,
        60_000,
        ">=",
        0.25,
    )
    assert shift.detector.kind == "cusum" and shift.detector.h == 5.1
    assert shift.selector == ("window:likes.like_rate", (("content", "a"),))
    assert cfg.escalation["critical"][1].wait == 300_000
    assert main(["alerts", "check-rules", str(path)]) == 0


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (
            {"rules": [{"name": "a", "kind": "threshold", "expr": "x >> 1"}]},
            "rules[0].threshold.expr",
        ),
        (
            {"rules": [{"name": "a", "kind": "threshold", "expr": "x > 1", "fro": "1s"}]},
            "rules[0].threshold.fro",
        ),
        (
            {"rules": [{"name": "a", "kind": "threshold", "expr": "x > 1", "for": "soon"}]},
            "rules[0].threshold.for",
        ),
        (
            {
                "rules": [
                    {
                        "name": "a",
                        "kind": "anomaly",
                        "metric": "x",
                        "detector": {"kind": "ewma", "h": 1},
                    }
                ]
            },
            "rules[0].anomaly.detector.ewma.h",
        ),
        (
            {
                "rules": [
                    {
                        "name": "a",
                        "kind": "trend",
                        "metric": "x",
                        "window": "0s",
                        "op": "<",
                        "threshold": 0,
                    }
                ]
            },
            "rules[0].trend.window",
        ),
        ({"channels": {"w": {"type": "webhook", "url": "ftp://x"}}}, "channels.w.webhook.url"),
        ({"escalation": {"critical": [{"notify": "a", "wait": "1s"}]}}, "escalation.critical[0]"),
        ({"escalation": {"urgent": [{"notify": "log"}]}}, "escalation.urgent"),
        ({"escalation": {"critical": [{"notify": "pager"}]}}, "unknown channel 'pager'"),
        (
            {"rules": [{"name": "a", "kind": "threshold", "expr": "x > 1"}] * 2},
            "duplicate rule names",
        ),
        ({"interval": "0s"}, "interval"),
    ],
)
def test_errors_name_the_path(data: dict, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_monitor_config(data, "rules.yaml")
    assert "rules.yaml" in str(info.value) and where in str(info.value)


def test_check_rules_command_reports_errors(tmp_path, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("rules: [{name: a, kind: nope}]\n")
    assert main(["alerts", "check-rules", str(path)]) == 1
    assert "rules[0]" in capsys.readouterr().err


def test_selector_parse_render_and_match() -> None:
    key = parse_selector('window:r.err{region="eu",tier="a\\"b"}')
    assert key == ("window:r.err", (("region", "eu"), ("tier", 'a"b')))
    assert parse_selector(render(key)) == key
    assert matches(parse_selector("window:r.err"), key)
    assert matches(parse_selector('window:r.err{region="eu"}'), key)
    assert not matches(parse_selector('window:r.err{region="us"}'), key)
    with pytest.raises(ValueError, match="selector"):
        parse_selector("bad name{")
