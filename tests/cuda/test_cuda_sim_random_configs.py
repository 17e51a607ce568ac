"""Random configurations: ``backend: cuda`` gives the CPU backend's every output.

Each seed draws a window (tumbling, sliding or session; keys from an int, a
string and an int8 column; allowed lateness), a subset of every aggregation kind
plus sketches, maybe top-k, a validation mode and error policy, batch and push
sizes, where host frames are prepared, and random events (nulls, disorder, rows
with a value outside the allowed set). Both backends must write the same tables
to every sink (windows, quarantine, late rows: same rows, floats to 1e-9
relative) and count the same events. CI runs the four seeds below, which cover
every window kind; ``FUZZ_SEEDS=0-79`` runs 80 (all passed when the test was
written: ``benchmarks/RESULTS.md``, sixth session).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from cuda_target import CUDA_WARNINGS, require_cuda_target

require_cuda_target()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the core suite's helpers

from engine_testing import ALL_AGGS, make_config, random_events, run_engine  # noqa: E402

pytestmark = [pytest.mark.cudasim, *CUDA_WARNINGS]

SKETCHES = [
    {"name": "x_p90", "op": "quantile", "column": "x", "q": 0.9},
    {"name": "x_p0", "op": "quantile", "column": "x", "q": 0.0},
    {"name": "s_distinct", "op": "count_distinct", "column": "s"},
    {"name": "k_distinct", "op": "count_distinct", "column": "k"},
]


def _seeds() -> list[int]:
    chosen = os.environ.get("FUZZ_SEEDS")
    if not chosen:
        return [1, 11, 24, 39]  # sliding, tumbling, sliding, session (all three kinds)
    lo, _, hi = chosen.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def random_case(seed: int) -> tuple[dict[str, Any], pd.DataFrame, dict[str, Any], int]:
    """(window, events, engine settings, rows per push) of one seed."""
    rng = np.random.default_rng(seed)
    kind = str(rng.choice(["tumbling", "sliding", "session"]))
    window: dict[str, Any] = {
        "type": kind,
        "keys": [c for c in ("k", "s", "e") if rng.random() < 0.45],
        "allowed_lateness": int(rng.choice([0, 100, 700])),
    }
    if kind == "tumbling":
        window["size"] = int(rng.choice([500, 1000, 3000]))
    elif kind == "sliding":
        slide = int(rng.choice([250, 500]))
        window.update(size=slide * int(rng.integers(1, 5)), slide=slide)
    else:
        window["gap"] = int(rng.choice([50, 300, 1000]))
    aggs = [a for a in ALL_AGGS if rng.random() < 0.6] or [ALL_AGGS[0]]
    aggs += [a for a in SKETCHES if rng.random() < 0.4]
    window["aggregations"] = aggs
    if rng.random() < 0.4:
        by = aggs[int(rng.integers(len(aggs)))]["name"]
        window["top_k"] = {"by": by, "k": int(rng.integers(1, 4)),
                           "descending": bool(rng.random() < 0.5)}  # fmt: skip
        if kind == "session":  # drawn all the same, so other seeds keep their draws
            window.pop("top_k")  # a session is a window of one key: top_k is refused
    n = int(rng.integers(20, 220))
    events = random_events(
        rng, n, n_keys=int(rng.integers(1, 6)), span_ms=int(rng.integers(500, 8000)),
        disorder_ms=int(rng.choice([0, 200, 900])), null_share=float(rng.choice([0, 0.1, 0.5])),
    )  # fmt: skip
    if rng.random() < 0.5:
        events.loc[rng.random(n) < 0.05, "e"] = 9  # not in the allowed set
    mode = str(rng.choice(["strict", "lenient", "off"])) if rng.random() < 0.3 else "strict"
    settings = {
        "validation": {"mode": mode, "on_error": str(rng.choice(["quarantine", "drop"]))},
        "batching": {"max_rows": int(rng.choice([29, 128, 1000]))},
        "cuda_host_frames": str(rng.choice(["device", "host"])),
    }
    return window, events, settings, int(rng.choice([5, 33, 500]))


def _sorted(table: Any) -> pd.DataFrame:
    frame = table.to_pandas()
    return frame.sort_values(
        list(frame.columns), na_position="last",
        key=lambda s: s.astype(str) if s.dtype == object else s,
    ).reset_index(drop=True)  # fmt: skip


def _differences(kind: str, cpu: pd.DataFrame, gpu: pd.DataFrame) -> list[str]:
    if list(cpu.columns) != list(gpu.columns) or len(cpu) != len(gpu):
        return [f"{kind}: columns {list(gpu.columns)} x {len(gpu)} rows, "
                f"expected {list(cpu.columns)} x {len(cpu)}"]  # fmt: skip
    problems = []
    for column in cpu.columns:
        want, got = cpu[column], gpu[column]
        if want.dtype.kind == "f" or str(want.dtype) == "Float64":
            a = want.to_numpy(dtype=float, na_value=np.nan)
            b = got.to_numpy(dtype=float, na_value=np.nan)
            if not np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True):
                problems.append(f"{kind}.{column}: values differ")
        elif not want.equals(got) and not want.astype(str).equals(got.astype(str)):
            problems.append(f"{kind}.{column}: {got.tolist()} != {want.tolist()}")
    return problems


@pytest.mark.parametrize("seed", _seeds())
def test_random_config_matches_cpu(seed: int) -> None:
    window, events, settings, push_rows = random_case(seed)
    outputs = {}
    for backend in ("cpu", "cuda"):
        config = make_config(window, backend=backend, workers=1, **settings)
        sink, summary = run_engine(config, events, chunk=push_rows)
        tables = {kind: sink.result(kind) for kind in sorted(sink.tables)}
        outputs[backend] = (tables, summary["events"])
    (cpu_tables, cpu_counts), (gpu_tables, gpu_counts) = outputs["cpu"], outputs["cuda"]
    assert gpu_counts == cpu_counts
    assert sorted(gpu_tables) == sorted(cpu_tables)
    assert any(kind.startswith("windows/") for kind in cpu_tables)
    problems = []
    for kind, table in cpu_tables.items():
        other = gpu_tables[kind]
        if table is None or other is None:
            assert table is None and other is None, kind
            continue
        problems += _differences(kind, _sorted(table), _sorted(other))
    assert not problems, (window, settings, problems)
