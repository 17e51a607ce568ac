"""Every YAML file the engine reads refuses a key given twice in one mapping, naming the
file and line: PyYAML keeps the last one, so a second ``rules:`` block or a repeated
``sla`` silently replaced the first (the pipeline config's test: test_config_review)."""

from __future__ import annotations

import pytest

from gpu_engine.errors import ConfigError
from gpu_engine.monitor import load_monitor_config
from gpu_engine.optimizer.problem import ProblemError, load_problem

RULES = """
rules:
  - {name: A, kind: threshold, expr: "batch_latency_p99_seconds > 1", severity: warning}
rules:
  - {name: B, kind: threshold, expr: "batch_latency_p99_seconds > 2", severity: warning}
"""


def test_monitor_rules_refuse_a_repeated_key(tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    with pytest.raises(ConfigError, match=r"key 'rules' is given twice .*first on line 2"):
        load_monitor_config(path, check_metrics=False)
    with pytest.raises(ConfigError, match=str(path)):
        load_monitor_config(path, check_metrics=False)


def test_problem_files_refuse_a_repeated_key(tmp_path) -> None:
    path = tmp_path / "problem.yaml"
    path.write_text("budget: 10\nbudget: 20\n")
    with pytest.raises(ProblemError, match=r"key 'budget' is given twice .*first on line 1"):
        load_problem(path)


def test_an_alias_of_a_mapping_with_a_merge_is_not_a_repetition() -> None:
    """PyYAML flattens a merge into its mapping in place; an alias of that mapping then
    holds the merged key beside its own, which the check took for a repeated key."""
    import yaml

    from gpu_engine.config.loading import read_yaml

    text = "c:\n  <<: &a {x: 1, <<: {x: 5}}\nd: *a\n"
    assert read_yaml(text, "t.yaml") == yaml.safe_load(text)
