"""A folder whose files do not go on from each other in event time: the run says which
files were mostly late, rather than exiting 0 with most of a file in ``late/`` unremarked.

Why: the files of a folder are read one after another under one watermark (as Flink's
file source reads its splits); a folder partitioned by region, each file covering the
same hour, lost all but the first file's last seconds to ``late/``, silently."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from gpu_engine.cli import main

CONFIG = """
schema:
  time: t
  fields:
    t: {type: int64, required: true}
    k: {type: int64, required: true}
windows:
  - {name: w, type: tumbling, size: 10s, keys: [k], allowed_lateness: 2s,
     aggregations: [{name: n, op: count}]}
"""


def _write(folder, name: str, k: int, start_ms: int, rng: np.random.Generator) -> pd.DataFrame:
    frame = pd.DataFrame({"t": start_ms + np.sort(rng.integers(0, 60_000, 600)), "k": k})
    frame.to_parquet(folder / name)
    return frame


@pytest.mark.parametrize("layout", ["by region", "by time"])
def test_mostly_late_files_are_named(layout: str, tmp_path, capsys) -> None:
    rng = np.random.default_rng(1)
    folder = tmp_path / "in"
    folder.mkdir()
    second_start = 0 if layout == "by region" else 60_000
    first = _write(folder, "a.parquet", 1, 0, rng)
    second = _write(folder, "b.parquet", 2, second_start, rng)
    (tmp_path / "c.yaml").write_text(CONFIG)
    out = tmp_path / "out"
    argv = ["run", "--no-progress", "--config", str(tmp_path / "c.yaml"), "--input", str(folder)]
    assert main([*argv, "--out", str(out)]) == 0
    err = " ".join(capsys.readouterr().err.split())
    summary = json.loads((out / "summary.json").read_text())
    # The oracle: the second file comes after the whole first one, whose largest time less
    # the lateness is the watermark; an event is late when its window ended by then.
    watermark = int(first["t"].max()) - 2000
    late = int(((second["t"] // 10_000 + 1) * 10_000 <= watermark).sum())
    assert summary["events"]["late"] == late
    name = str(folder / "b.parquet")
    if layout == "by region":
        assert late > len(second) // 2
        assert summary["late_inputs"] == {name: {"events": len(second), "late": late}}
        assert f"{late:,} of the {len(second):,} events of {name} were late" in err
    else:
        assert late == 0 and summary["late_inputs"] == {} and "were late" not in err
