"""Configuration: the documented shape loads; mistakes are reported with their path."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gpu_engine.config import load_config, parse_config
from gpu_engine.errors import ConfigError
from gpu_engine.units import format_duration_ms, parse_duration_ms

EXAMPLES = Path(__file__).resolve().parents[1] / "gpu_engine" / "examples"

ISSUE_SHAPE = """
schema:
  time: event_time
  fields:
    event_time: {type: int64, required: true}
    content_id: {type: int64, required: true, min: 0}
    event_type: {type: int8, allowed: [0, 1, 2, 3, 4]}
    watch_ms:   {type: float32, min: 0, max: 3600000}
    latency_ms: {type: float32, min: 0, nullable: true}
    region:     {type: string}
    user_id:    {type: int64}
validation: {mode: strict, on_error: quarantine}
batching: {max_rows: 65536, max_delay: 50ms}
windows:
  - name: content
    type: sliding
    size: 5s
    slide: 1s
    keys: [content_id]
    allowed_lateness: 2s
    idle_timeout: 1s
    aggregations:
      - {name: views, op: count}
      - {name: likes, op: count, where: {event_type: 1}}
      - {name: watch_sum, op: sum, column: watch_ms}
      - {name: watch_mean, op: mean, column: watch_ms}
      - {name: watch_std, op: std, column: watch_ms}
      - {name: latency_min, op: min, column: latency_ms}
      - {name: latency_max, op: max, column: latency_ms}
      - {name: latency_p99, op: quantile, column: latency_ms, q: 0.99}
      - {name: viewers, op: count_distinct, column: user_id}
    top_k: {by: views, k: 100}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_issue_shape_loads(tmp_path) -> None:
    config = load_config(_write(tmp_path, ISSUE_SHAPE))
    window = config.windows[0]
    assert (window.size, window.slide, window.pane_ms, window.allowed_lateness) == (
        5000,
        1000,
        1000,
        2000,
    )
    assert config.batching.max_delay == 50
    assert window.top_k is not None and window.top_k.k == 100


@pytest.mark.parametrize("name", ["short_video.yaml", "nexmark_bids.yaml"])
def test_examples_load(name) -> None:
    assert load_config(EXAMPLES / name).windows


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["windows"][0].update(slid="1s"), r"windows\[0\]\.slid: unknown field"),
        (
            lambda d: d["windows"][0].update(slide="2s"),
            r"windows\[0\]: slide 2000ms does not divide size 5000ms",
        ),
        (
            lambda d: d["windows"][0]["aggregations"][8].update(column="user"),
            r"windows\[0\]\.aggregations\[8\]\.column: 'user' is not a field of schema.fields",
        ),
        (
            lambda d: d["schema"]["fields"]["watch_ms"].update(type="float"),
            r"schema\.fields\.watch_ms\.type: Input should be",
        ),
        (
            lambda d: d["windows"][0].update(size="5 parsecs"),
            r"windows\[0\]\.size: '5 parsecs' is not a duration",
        ),
        (
            lambda d: d["windows"][0]["top_k"].update(by="nope"),
            r"top_k.by 'nope' is not an aggregation",
        ),
        (
            lambda d: d["windows"][0]["keys"].append("watch_ms"),
            r"keys\[1\]: 'watch_ms' is a float field",
        ),
        (
            lambda d: d["windows"][0]["aggregations"][2].update(op="median"),
            r"aggregations\[2\]\.op",
        ),
        (
            lambda d: d["windows"][0]["aggregations"][1].update(where={"region": 3}),
            r"aggregations\[1\]\.where\.region: 3 is not of type string",
        ),
        (lambda d: d.update(validaton={}), r"validaton: unknown field"),
        (
            lambda d: (
                d["schema"]["fields"]["event_time"].update(type="timestamp"),
                d["windows"][0]["aggregations"][7].update(column="event_time"),
            ),
            r"aggregations\[7\]\.column: op quantile of timestamp field 'event_time': the"
            r" sketch's 1 % relative error is of the time since 1970",
        ),
    ],
)
def test_mistakes_name_their_path(tmp_path, edit, message) -> None:
    data = yaml.safe_load(ISSUE_SHAPE)
    edit(data)
    path = _write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_user_id_missing_from_schema_is_reported(tmp_path) -> None:
    text = ISSUE_SHAPE.replace("    user_id:    {type: int64}\n", "")
    with pytest.raises(ConfigError, match=r"aggregations\[8\]\.column: 'user_id' is not a field"):
        load_config(_write(tmp_path, text))


def test_session_and_tumbling_shapes() -> None:
    base = yaml.safe_load(ISSUE_SHAPE)
    window = {"name": "s", "type": "session", "gap": "30s", "keys": ["region"],
              "aggregations": [{"name": "n", "op": "count"}]}  # fmt: skip
    config = parse_config({**base, "windows": [window]})
    assert config.windows[0].gap == 30_000
    with pytest.raises(ConfigError, match="session window takes gap, not size"):
        parse_config({**base, "windows": [{**window, "size": "1s"}]})
    tumbling = {
        "name": "t",
        "type": "tumbling",
        "size": "1m",
        "aggregations": window["aggregations"],
    }
    assert parse_config({**base, "windows": [tumbling]}).windows[0].pane_ms == 60_000


def test_missing_file_and_bad_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(_write(tmp_path, "schema: [unclosed"))


@pytest.mark.parametrize(
    ("text", "ms"),
    [("50ms", 50), ("2s", 2000), ("1.5s", 1500), ("5m", 300_000), ("1h", 3_600_000), (250, 250),
     ("2305843009213693953ms", 2**61 + 1), ("9007199254740993s", (2**53 + 1) * 1000),
     ("0.001s", 1), ("1.0000000000000001s", None), ("1.0000000000000000000000000001s", None),
     ("2305843009213693952.0000000001ms", None), ("9" * 40 + "ms", int("9" * 40))],
)  # fmt: skip
def test_durations(text, ms) -> None:
    """Exactly, past 2^53 too (they were read through a float and rounded)."""
    if ms is None:  # not a whole ms, though a float would round it to one
        with pytest.raises(ValueError, match="whole number"):
            parse_duration_ms(text)
        return
    assert parse_duration_ms(text) == ms
    assert parse_duration_ms(format_duration_ms(ms)) == ms


@pytest.mark.parametrize("bad", ["-1s", "1 fortnight", "0.5ms", True, -3, ""])
def test_bad_durations(bad) -> None:
    with pytest.raises(ValueError):
        parse_duration_ms(bad)


def test_device_memory_limit_accepts_sizes() -> None:
    base = yaml.safe_load(ISSUE_SHAPE)
    assert parse_config({**base, "device_memory_limit": "8GiB"}).device_memory_limit == 8 * 2**30
    with pytest.raises(ConfigError, match="device_memory_limit"):
        parse_config({**base, "device_memory_limit": "lots"})
