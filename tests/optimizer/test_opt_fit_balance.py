"""Metric fits against scipy NNLS and known synthetic models; key balancing goals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import nnls

from gpu_engine.cli import main as gpu_engine_main
from gpu_engine.optimizer.balance import KeyBalancer, jain_index, key_hash
from gpu_engine.optimizer.fit import (
    OnlineServiceFit,
    arrival_rate,
    fit_metrics,
    fit_service_time,
    read_metrics,
)
from gpu_engine.optimizer.model import predict
from gpu_engine.optimizer.problem import Problem, Stage

# ------------------------------------------------------------------------------ fits


def test_nnls_matches_scipy_including_clipped_cases() -> None:
    rng = np.random.default_rng(0)
    for trial in range(30):
        b = rng.integers(1, 5000, 50).astype(float)
        a_true = rng.uniform(-2e-3, 2e-3)  # negative truths force the a = 0 or c = 0 faces
        c_true = rng.uniform(-1e-6, 1e-6) if trial % 3 else rng.uniform(0, 1e-6)
        s = a_true + c_true * b + rng.normal(0, 1e-4, b.size)
        fit = fit_service_time(b, s)
        ref, _ = nnls(np.c_[np.ones_like(b), b], s)
        assert fit.a == pytest.approx(ref[0], abs=1e-10)
        assert fit.c == pytest.approx(ref[1], abs=1e-13)


def test_online_fit_follows_a_change_in_the_pipeline() -> None:
    rng = np.random.default_rng(1)
    of = OnlineServiceFit(half_life=200)
    for a, c in ((1e-3, 2e-7), (4e-4, 8e-7)):
        b = rng.integers(10, 4000, 3000).astype(float)
        of.update(b, a + c * b + rng.normal(0, 2e-5, b.size))
    fit = of.fit()
    assert fit.a == pytest.approx(4e-4, rel=0.02) and fit.c == pytest.approx(8e-7, rel=0.02)


def test_a_slow_first_batch_is_set_aside_from_the_metrics_fit(tmp_path: Path) -> None:
    """A run's first batch compiles kernels (11 s among batches of milliseconds): it set
    the plain fit's error to 1.5 s. The fit of the other batches equals scipy's NNLS
    on them alone, and a warning says a batch was left out."""
    _write_metrics(tmp_path / "m")
    frame = read_metrics(tmp_path / "m").sort_values("time_s", kind="stable")
    first = frame.groupby("stage").head(1).index
    frame.loc[first, "seconds"] = 11.0
    fit = fit_metrics(frame)
    for stage in fit.stages:
        part = frame[frame["stage"] == stage.name].drop(index=first, errors="ignore")
        b, secs = part["rows"].to_numpy(float), part["seconds"].to_numpy(float)
        ref, _ = nnls(np.c_[np.ones_like(b), b], secs)
        assert stage.set_aside == 1 and stage.batches == len(part)
        assert stage.fit.a == pytest.approx(ref[0], abs=1e-10)
        assert stage.fit.c == pytest.approx(ref[1], abs=1e-13)
        assert stage.fit.rmse < 1e-4
    assert any("1 of 600 batches" in w for w in fit.warnings())
    clean = fit_metrics(read_metrics(tmp_path / "m"))  # noise alone sets nothing aside
    assert [s.set_aside for s in clean.stages] == [0, 0, 0] and clean.warnings() == []


def test_arrival_rate_is_unbiased_on_a_poisson_stream() -> None:
    rng = np.random.default_rng(2)
    lam, size = 50_000.0, 500
    n = 400
    gaps = rng.exponential(size / lam, n)  # a batch of `size` closes every size/λ on average
    est = arrival_rate(np.cumsum(gaps), np.full(n, size))
    assert est == pytest.approx(lam, rel=0.1)


TRUTH = {"validate": (2e-4, 1e-7, 4), "aggregate": (5e-4, 3e-7, 6), "emit": (1e-4, 5e-8, 2)}


def _write_metrics(out: Path, lam: float = 200_000.0, n: int = 600, seed: int = 3) -> None:
    """batches.parquet from a known model: s = a + c·rows (+ small noise), steady λ."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(200, 3000, n)
    t = 1.7e9 + np.cumsum(rows / lam)
    frames = []
    for name, (a, c, w) in TRUTH.items():
        frames.append(
            pd.DataFrame(
                {
                    "time_s": t + rng.uniform(0, 1e-3, n),
                    "stage": name,
                    "rows": rows.astype(np.int64),
                    "seconds": a + c * rows + rng.normal(0, 5e-6, n),
                    "workers": np.full(n, w, dtype=np.int64),
                }
            )
        )
    out.mkdir(parents=True, exist_ok=True)
    pd.concat(frames).sample(frac=1.0, random_state=0).to_parquet(out / "batches.parquet")


def test_optimize_from_metrics_recovers_the_model_and_reports_both_allocations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_metrics(tmp_path / "metrics")
    rc = gpu_engine_main(
        ["optimize", "--metrics", str(tmp_path / "metrics"), "--budget", "2.0", "--sla", "50ms",
         "--iterations", "300"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    fitted = {s["name"]: s for s in out["fit"]["stages"]}
    assert [s["name"] for s in out["fit"]["stages"]] == ["validate", "aggregate", "emit"]
    for name, (a, c, _) in TRUTH.items():
        assert fitted[name]["a"] == pytest.approx(a, rel=0.05)
        assert fitted[name]["c"] == pytest.approx(c, rel=0.02)
    assert out["fit"]["arrival_rate"] == pytest.approx(200_000, rel=0.01)
    assert [s["workers"] for s in out["current"]["stages"]] == [4, 6, 2]
    # the current prediction is the model's for the measured allocation and fitted model
    prob = Problem(
        arrival_rate=out["fit"]["arrival_rate"], budget=2.0, sla="50ms",  # type: ignore[arg-type]
        stages=[Stage(name=s["name"], a=s["a"], c=s["c"]) for s in out["fit"]["stages"]],
    )  # fmt: skip
    cur = predict(prob, [4, 6, 2], [s["batch"] for s in out["current"]["stages"]])
    assert out["current"]["latency_s"] == pytest.approx(cur.latency_s, rel=1e-9)
    assert out["current"]["cost"] == pytest.approx(0.6)
    rec = out["recommended"]
    assert rec["feasible"] and rec["latency_s"] <= 0.05 and rec["cost"] <= 2.0
    assert rec["objective"] <= out["current"]["objective"] + 1e-12


def test_metrics_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "m"
    d.mkdir()
    pd.DataFrame({"time_s": [1.0], "stage": ["validate"], "rows": [1]}).to_parquet(
        d / "batches.parquet"
    )
    assert gpu_engine_main(["optimize", "--metrics", str(d), "--budget", "1", "--sla", "5ms"]) == 2
    assert "seconds" in capsys.readouterr().err
    assert gpu_engine_main(["optimize", "--metrics", str(d)]) == 2
    assert "--metrics needs --budget and --sla" in capsys.readouterr().err


@pytest.mark.parametrize("weights", ["1,2", "1,2,x", "1,-1,1", "1,2,3,4"])
def test_weights_that_are_not_three_non_negative_numbers_are_refused(
    weights: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_metrics(tmp_path / "metrics")
    argv = ["optimize", "--metrics", str(tmp_path / "metrics"), "--budget", "2", "--sla", "50ms"]
    assert gpu_engine_main([*argv, "--weights", weights]) == 2
    message = f"--weights {weights!r}: give three non-negative numbers a,b,c"
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--budget", "0"], "argument --budget: Input should be greater than 0"),
        (["--sla", "10parsecs"], "argument --sla: '10parsecs' is not a duration"),
        (["--price", "nan"], "argument --price: Input should be a finite number"),
        (["--failure-prob", "2"], "argument --failure-prob: Input should be less than 1"),
    ],
)
def test_metrics_option_errors_name_the_option(
    option: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """They named the model's field (``failure_prob: ...``), not the option given."""
    _write_metrics(tmp_path / "metrics")
    argv = ["optimize", "--metrics", str(tmp_path / "metrics"), "--budget", "2", "--sla", "50ms"]
    try:
        code = gpu_engine_main([*argv, *option])
    except SystemExit as exit_:  # --sla is checked by argparse, with the usage
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("seconds", np.nan, "column 'seconds', row 5: nan is not a duration"),
        ("seconds", np.inf, "column 'seconds', row 5: inf is not a duration"),
        ("seconds", -1.0, "column 'seconds', row 5: -1.0 is not a duration"),
        ("time_s", np.nan, "column 'time_s', row 5: nan is not a finite time"),
        ("stage", None, "column 'stage', row 5: a null stage name"),
        ("workers", 5000, "column 'workers', row 5: 5000 is more than the 4096 workers"),
        ("rows", 0, "column 'rows', row 5: 0 is not a positive row count"),
    ],
)
def test_a_bad_metric_value_is_named_by_column_and_row(
    column: str, value: object, message: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """One NaN among 600 timings read as 'measured service time is zero', a null stage
    as 'no batches to fit', 5000 workers as '<root>: at most 4096 ...'."""
    _write_metrics(tmp_path / "m")
    path = tmp_path / "m" / "batches.parquet"
    frame = pd.read_parquet(path)
    frame = frame.reset_index(drop=True)
    frame.loc[5, column] = value
    frame.to_parquet(path)
    argv = ["optimize", "--metrics", str(path), "--budget", "2", "--sla", "50ms"]
    assert gpu_engine_main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_zero_sla_option_is_named_as_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_metrics(tmp_path / "m")
    argv = ["optimize", "--metrics", str(tmp_path / "m"), "--budget", "2", "--sla", "0ms"]
    assert gpu_engine_main(argv) == 2
    assert "argument --sla: sla must be positive" in capsys.readouterr().err


# ------------------------------------------------------------------------- balancing

N_KEYS = 100_000


@pytest.fixture(scope="module")
def zipf() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    keys = rng.permutation(np.unique(rng.integers(0, 10**12, 2 * N_KEYS))[:N_KEYS])
    p = np.arange(1, N_KEYS + 1, dtype=float) ** -1.1
    return keys, p / p.sum()


def _stream(keys: np.ndarray, p: np.ndarray, n: int, seed: int) -> np.ndarray:
    return keys[np.random.default_rng(seed).choice(keys.size, n, p=p)]


def _measured(kb: KeyBalancer, events: np.ndarray) -> np.ndarray:
    counts = np.bincount(kb.assign(events), minlength=max(kb.workers) + 1)
    return counts[kb.workers].astype(float)


def test_jain_index_extremes() -> None:
    assert jain_index([3, 3, 3, 3]) == pytest.approx(1.0)
    assert jain_index([1, 0, 0, 0]) == pytest.approx(0.25)


def test_zipf_goals_and_minimal_moves_on_worker_changes(zipf) -> None:
    keys, p = zipf
    kb = KeyBalancer(8)
    train = _stream(keys, p, 1_000_000, seed=1)
    uk, cnt = np.unique(train, return_counts=True)
    test = _stream(keys, p, 1_000_000, seed=2)  # judged on fresh events, not the training ones
    assert jain_index(_measured(kb, test)) < 0.95  # plain hashing fails the goal here
    kb.observe((uk, cnt.astype(float)))
    assert kb.needs_rebalance()
    before = kb.placement(keys)
    kb.rebalance()
    loads = _measured(kb, test)
    assert jain_index(loads) >= 0.95 and loads.max() / loads.mean() <= 1.25
    assert (kb.placement(keys) != before).mean() < 0.01  # a handful of hot keys moved
    for change in ("add", "remove"):
        n = len(kb.workers)
        before = kb.placement(keys)
        if change == "add":
            kb.add_worker()
        else:
            kb.remove_worker(kb.workers[3])
        moved = (kb.placement(keys) != before).mean()
        assert moved <= 1.5 / n, change
        loads = _measured(kb, test)
        assert jain_index(loads) >= 0.95 and loads.max() / loads.mean() <= 1.25, change


def test_rebalance_triggers_when_load_drifts(zipf) -> None:
    keys, p = zipf
    kb = KeyBalancer(8)
    kb.observe((keys, p * 1e6))
    kb.rebalance()
    assert kb.maybe_rebalance() == 0  # balanced: nothing to do
    drift = p.copy()
    drift[5000:5040] = p[0] / 4  # 40 formerly cold keys turn hot
    kb.observe((keys, drift * 1e6))
    assert kb.fairness() < 0.95 or kb.needs_rebalance()
    before = kb.placement(keys)
    assert kb.maybe_rebalance() > 0
    assert kb.fairness() >= 0.95
    assert (kb.placement(keys) != before).sum() <= 200


def test_split_keys_rotate_and_string_keys_work() -> None:
    kb = KeyBalancer(4)
    kb.observe({"hot": 1000.0, **{f"k{i}": 1.0 for i in range(200)}})
    kb.rebalance()
    (reps,) = kb.split_keys().values()
    assert len(reps) >= 2
    got = kb.assign(["hot"] * 40)
    assert set(got.tolist()) == set(reps)
    assert np.bincount(got).max() - np.bincount(got)[np.bincount(got) > 0].min() <= 1


def test_a_key_hash_is_its_own_whatever_keys_share_the_call() -> None:
    """A string key beside integer keys used to switch them all to hashing their text
    (176 of the keys 0..199 changed worker); 1 and "1" merged; a tuple key was a row."""
    ints = list(range(200))
    alone = key_hash(np.array(ints, dtype=np.int64))
    assert np.array_equal(key_hash(ints), alone)
    assert np.array_equal(key_hash([*ints, "x", ("eu", 1)])[:200], alone)
    big = [2**63 - 1, -(2**63), 2**64 - 1, -1]
    assert np.array_equal(key_hash(big)[:2], key_hash(np.array(big[:2], dtype=np.int64)))
    assert key_hash(big)[2] == key_hash(big)[3]  # the same 64 bits, as in a uint64 column
    assert len(set(key_hash([1, "1", 1.0, True, ("1",)]).tolist())) == 5
    balancer = KeyBalancer(4)
    composite = [("us", 1), ("eu", 2), ("ap", 3)]
    assert balancer.placement(composite).shape == (3,)
    balancer.observe({("us", 1): 5.0, ("eu", 2): 1.0, 1: 3.0, "1": 4.0})
    assert sorted(balancer._key_load.tolist()) == [1.0, 3.0, 4.0, 5.0]


def test_sla_as_a_number_is_milliseconds_as_disorder_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--sla 50`` was refused as not a duration, where ``run --disorder 2`` is 2 ms."""
    _write_metrics(tmp_path / "metrics")
    argv = ["optimize", "--metrics", str(tmp_path / "metrics"), "--budget", "2.0",
            "--iterations", "50"]  # fmt: skip
    assert gpu_engine_main([*argv, "--sla", "50"]) == 0
    as_number = json.loads(capsys.readouterr().out)
    assert gpu_engine_main([*argv, "--sla", "50ms"]) == 0
    assert as_number == json.loads(capsys.readouterr().out)


def test_fit_options_with_a_problem_file_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``optimize --problem F --budget 5`` ignored --budget: the file states its own."""
    problem = Path(__file__).parents[2] / "gpu_engine" / "examples" / "problem.yaml"
    assert gpu_engine_main(["optimize", "--problem", str(problem), "--budget", "5",
                            "--price", "0.05"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "--budget, --price: only with --metrics (a --problem FILE states its own)" in err


@pytest.mark.parametrize("sla", ["\u00b2", "\u0665\u0660", "-5"])
def test_sla_that_is_no_ascii_number_is_refused_by_argparse(
    sla: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Unicode digit passed ``str.isdigit``: '²' ended in a traceback from ``int``, and
    Arabic-Indic '٥٠' was taken as 50 ms."""
    with pytest.raises(SystemExit) as raised:
        gpu_engine_main(["optimize", "--metrics", "m", "--budget", "2", "--sla", sla])
    assert raised.value.code == 2
    assert "argument --sla:" in capsys.readouterr().err
