"""Configurations that loaded but could not mean what they said are refused at load, by path."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpu_engine.config import load_config, parse_config
from gpu_engine.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples"

BASE: dict[str, Any] = {
    "schema": {
        "time": "t",
        "fields": {
            "t": {"type": "int64", "required": True},
            "k": {"type": "int64", "required": True},
            "x": {"type": "float64", "nullable": True},
            "ts": {"type": "timestamp", "nullable": True},
        },
    },
    "windows": [
        {
            "name": "w",
            "type": "tumbling",
            "size": "1s",
            "keys": ["k"],
            "aggregations": [{"name": "n", "op": "count"}],
        }
    ],
    "backend": "cpu",
}


def _config(
    window: dict[str, Any] | None = None, field: dict[str, Any] | None = None
) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["windows"][0].update(window or {})
    if field is not None:
        data["schema"]["fields"]["z"] = field
    return data


def _refused(data: dict[str, Any], message: str) -> str:
    with pytest.raises(ConfigError, match=message) as info:
        parse_config(data)
    return str(info.value)


# 1. Duplicate keys in YAML ------------------------------------------------------------

GOOD_YAML = """\
schema:
  time: t
  fields:
    t: {type: int64}
    k: {type: int64}
windows:
  - name: per_key
    type: tumbling
    size: 1s
    keys: [k]
    aggregations: [{name: n, op: count}]
backend: cpu
"""


@pytest.mark.parametrize(
    ("text", "key", "line", "first"),
    [
        (  # a second top-level windows block replaced the first
            GOOD_YAML + "windows:\n  - {name: total, type: tumbling, size: 1s,"
            " aggregations: [{name: n, op: count}]}\n",
            "windows",
            13,
            6,
        ),
        (  # a field given twice: the second type won
            GOOD_YAML.replace(
                "    k: {type: int64}\n", "    k: {type: int64}\n    k: {type: string}\n"
            ),
            "k",
            6,
            5,
        ),
        (GOOD_YAML.replace("    size: 1s\n", "    size: 1s\n    size: 1h\n"), "size", 10, 9),
        (  # in a flow mapping too
            GOOD_YAML.replace("{name: n, op: count}", "{name: n, op: count, name: m}"),
            "name",
            11,
            11,
        ),
    ],
)
def test_duplicate_yaml_keys_are_refused_with_file_and_line(
    tmp_path, text, key, line, first
) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    assert f"key {key!r}" in message
    assert f"line {line}" in message and f"line {first}" in message


def test_yaml_merge_keys_may_still_be_overridden(tmp_path) -> None:
    """``<<`` merges are not duplicates: an explicit key overrides a merged one."""
    text = GOOD_YAML.replace(
        "windows:\n  - name: per_key\n    type: tumbling\n    size: 1s\n",
        "windows:\n  - &base\n    name: per_key\n    type: tumbling\n    size: 1s\n",
    ).replace(
        "backend: cpu\n",
        "  - <<: *base\n    name: other\n    size: 1h\nbackend: cpu\n",
    )
    path = tmp_path / "merge.yaml"
    path.write_text(text)
    config = load_config(path)
    assert [(w.name, w.size) for w in config.windows] == [("per_key", 1000), ("other", 3_600_000)]


def test_other_yaml_errors_name_the_file(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("schema: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(path)
    assert str(path) in str(info.value)


# 2. count takes no column --------------------------------------------------------------


def test_count_with_a_column_is_refused() -> None:
    message = _refused(
        _config({"aggregations": [{"name": "n", "op": "count", "column": "x"}]}),
        r"windows\[0\]\.aggregations\[0\]: count takes no column \(it counts events, nulls"
        r" included\); use a where, or count_distinct",
    )
    assert "'x'" in message


@pytest.mark.parametrize("name", ["short_video.yaml", "nexmark_bids.yaml"])
def test_examples_still_load(name) -> None:
    assert load_config(EXAMPLES / name).windows


def test_readme_yaml_examples_still_load() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "windows:" in b]
    assert blocks
    for block in blocks:
        assert parse_config(yaml.safe_load(block)).windows


# 3. Names that load but break outputs ---------------------------------------------------


def test_window_name_longer_than_100_characters_is_refused() -> None:
    assert parse_config(_config({"name": "w" * 100})).windows[0].name == "w" * 100
    message = _refused(_config({"name": "w" * 300}), r"windows\[0\]\.name: .*at most 100")
    assert "www" in message  # the name, shortened


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "empty"),
        ("a\nb", "control character"),
        ("a" * 101, "at most 100"),
        ("t\tab", "control"),
    ],
)
def test_bad_aggregation_names_are_refused(name, why) -> None:
    _refused(
        _config({"aggregations": [{"name": "n", "op": "count"}, {"name": name, "op": "count"}]}),
        rf"windows\[0\]\.aggregations\[1\]\.name: .*{why}",
    )


def test_aggregation_names_that_are_fine_column_names_load() -> None:
    aggs = [
        {"name": name, "op": "count"} for name in ("views", "p99 latency", "a/b", "é", "a" * 100)
    ]
    assert len(parse_config(_config({"aggregations": aggs})).windows[0].aggregations) == 5


# 4. sum, std and var of a timestamp -----------------------------------------------------


@pytest.mark.parametrize("op", ["sum", "std", "var"])
def test_sum_std_var_of_a_timestamp_are_refused(op) -> None:
    _refused(
        _config({"aggregations": [{"name": "a", "op": op, "column": "ts"}]}),
        rf"windows\[0\]\.aggregations\[0\]\.column: op {op} of timestamp field 'ts'",
    )


@pytest.mark.parametrize("op", ["mean", "min", "max", "count_distinct"])
def test_other_ops_of_a_timestamp_still_load(op) -> None:
    assert parse_config(_config({"aggregations": [{"name": "a", "op": op, "column": "ts"}]}))


# 5. Repeated names are named -----------------------------------------------------------


def test_repeated_window_names_are_named() -> None:
    data = _config()
    data["windows"] += [
        {**data["windows"][0], "name": "other"},
        copy.deepcopy(data["windows"][0]),
    ]
    message = _refused(data, r"windows: window names repeat")
    assert "'w'" in message and "'other'" not in message


def test_repeated_aggregation_names_are_named() -> None:
    aggs = [
        {"name": "n", "op": "count"},
        {"name": "s", "op": "sum", "column": "x"},
        {"name": "n", "op": "max", "column": "x"},
        {"name": "s", "op": "min", "column": "x"},
        {"name": "m", "op": "mean", "column": "x"},
    ]
    message = _refused(_config({"aggregations": aggs}), r"windows\[0\]: aggregation names repeat")
    assert "'n'" in message and "'s'" in message and "'m'" not in message


# 6. Rules no value can pass -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ({"type": "int8", "min": 300}, r"min 300.* above int8's largest value 127"),
        ({"type": "uint8", "max": -1}, r"max -1.* below uint8's smallest value 0"),
        (
            {"type": "int16", "min": 40000, "max": 50000},
            r"min 40000 is above int16's largest value 32767",
        ),
        ({"type": "int64", "min": float("nan")}, r"min is NaN"),
        ({"type": "float64", "max": float("nan")}, r"max is NaN"),
        ({"type": "int64", "allowed": [1, 2], "min": 5}, r"none of the allowed values"),
        ({"type": "float32", "allowed": [0.5], "max": 0.25}, r"none of the allowed values"),
    ],
)
def test_rules_no_value_can_pass_are_refused(field, message) -> None:
    _refused(_config(field=field), rf"schema\.fields\.z: {message}")


@pytest.mark.parametrize(
    "field",
    [
        {"type": "int8", "min": 127},
        {"type": "int8", "min": -1000},  # below the type: every value passes it
        {"type": "uint8", "max": 0},
        {"type": "uint8", "max": 1000},
        {"type": "int64", "allowed": [1, 2, 7], "min": 5},
        {"type": "int64", "allowed": [1, 2], "max": 1},
        {"type": "float64", "min": float("-inf")},
        {"type": "float32", "allowed": [0.1], "min": 0.1, "max": 0.1},
    ],
)
def test_rules_some_value_can_pass_still_load(field) -> None:
    assert parse_config(_config(field=field))


def test_an_integer_bound_past_float64_is_refused_not_a_traceback() -> None:
    """``min: 10**400`` (an int, kept exact) raised OverflowError from the NaN check."""
    from gpu_engine.config.models import FieldSpec

    with pytest.raises(ValueError, match=r"min \(1329 bits\) is beyond float64's range"):
        FieldSpec(type="float64", min=10**400)


def test_an_int64_allowed_set_is_compared_with_its_bounds_exactly() -> None:
    """Rows are checked exactly past 2^53, so the load-time check must be too: 2^60 + 1
    is above max 2^60, though both are the same float64."""
    from gpu_engine.config.models import FieldSpec

    with pytest.raises(ValueError, match="none of the allowed values"):
        FieldSpec(type="int64", max=2**60, allowed=[2**60 + 1])
    assert FieldSpec(type="int64", max=2**60, allowed=[2**60, 2**60 + 1]).allowed


@pytest.mark.parametrize(
    "change, path",
    [
        ({"keys": ["x"]}, r"windows\[0\]\.keys\[0\]: 'x' is a float field"),
        ({"idle_timeout": 0}, r"windows\[0\]\.idle_timeout: must be positive"),
    ],
)
def test_a_config_built_in_python_is_checked_by_the_engine(change: dict, path: str) -> None:
    """``EngineConfig.model_validate`` skips the checks across sections that
    ``parse_config`` runs; the engine runs them itself. A float key was truncated: keys
    1.5 and 1.9 made one window row ``k = 1.0`` holding both events."""
    from gpu_engine.config import EngineConfig
    from gpu_engine.engine import Engine

    data = copy.deepcopy(BASE)
    data["windows"][0].update(change)
    config = EngineConfig.model_validate(data)
    with pytest.raises(ConfigError, match=path):
        Engine(config)
