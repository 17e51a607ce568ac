"""``benchmarks.stages`` honours ``--events`` and ``--seed`` in every mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks import stages


@pytest.mark.parametrize("what", ["engine", "validate"])
def test_the_dataset_follows_events_and_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], what: str
) -> None:
    asked: list[tuple[int, int]] = []
    real = stages.dataset

    def dataset(events: int, seed: int) -> Path:
        asked.append((events, seed))
        return real(events, seed)

    monkeypatch.setattr(stages, "dataset", dataset)
    assert stages.main([what, "--events", "2k", "--seed", "3", "--repeat", "1"]) == 0
    assert asked == [(2_000, 3)]  # it read dataset(events, 0) whatever --seed
    assert "2,000 events" in capsys.readouterr().out


def test_ingest_follows_events_and_seed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``ingest`` used to run 60 batches of 65,536 events drawn with seed 0 whatever it
    was told."""
    seeds: list[Any] = []
    real = np.random.default_rng

    def default_rng(seed: Any = None) -> np.random.Generator:
        seeds.append(seed)
        return real(seed)

    monkeypatch.setattr(np.random, "default_rng", default_rng)
    args = ["ingest", "--events", "8k", "--batch-rows", "1000", "--seed", "5"]
    assert stages.main(args) == 0
    assert seeds == [5]
    assert "pane ingest of 8,000 events (seed 5, 5,000 timed)" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # 3 batches: none timed
        stages.main(["ingest", "--events", "3000", "--batch-rows", "1000"])
