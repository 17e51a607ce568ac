"""Fit the model's inputs from measured batches: service times ``s(b) = a + c·b`` and λ.

The fits are non-negative least squares (a negative fixed cost or per-event
cost is physically meaningless and would let the solver "save" time by batching).
With two unknowns NNLS is solved exactly by checking the four active sets.
``OnlineServiceFit`` keeps exponentially forgotten sufficient statistics so the
fit follows the pipeline as metrics arrive without storing them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from gpu_engine.optimizer.problem import MAX_WORKERS, Problem, Stage, Weights

PIPELINE_ORDER = ("ingest", "validate", "aggregate", "emit")
METRIC_COLUMNS = {"time_s": "f", "stage": "O", "rows": "i", "seconds": "f", "workers": "i"}


class MetricsError(ValueError):
    """Metrics that cannot be fitted (missing file or column, too few batches)."""


@dataclass(frozen=True)
class ServiceFit:
    """Fitted service time per batch: ``a + c·b`` seconds; rmse in seconds."""

    a: float
    c: float
    rmse: float
    n: float  # number of batches (effective, when forgetting)


def _nnls_from_stats(
    n: float, sb: float, sbb: float, ss: float, sbs: float, sss: float
) -> ServiceFit:
    """Exact 2-variable NNLS from (weighted) sums: n=Σ1, sb=Σb, sbb=Σb², ss=Σs, sbs=Σbs, sss=Σs²."""
    if n <= 0:
        raise MetricsError("no batches to fit")

    def sse(a: float, c: float) -> float:
        return sss - 2 * a * ss - 2 * c * sbs + a * a * n + 2 * a * c * sb + c * c * sbb

    cands = [(0.0, 0.0)]
    det = n * sbb - sb * sb
    if det > 1e-12 * max(n * sbb, 1e-300):
        a = (sbb * ss - sb * sbs) / det
        c = (n * sbs - sb * ss) / det
        if a >= 0 and c >= 0:
            cands.append((a, c))
    if sbb > 0:
        cands.append((0.0, max(0.0, sbs / sbb)))
    cands.append((max(0.0, ss / n), 0.0))
    a, c = min(cands, key=lambda ac: sse(*ac))
    return ServiceFit(a=a, c=c, rmse=math.sqrt(max(sse(a, c), 0.0) / n), n=n)


def fit_service_time(rows: ArrayLike, seconds: ArrayLike) -> ServiceFit:
    """Non-negative least-squares fit of ``seconds ≈ a + c·rows`` over batches."""
    b = np.asarray(rows, dtype=np.float64)
    s = np.asarray(seconds, dtype=np.float64)
    if b.shape != s.shape or b.ndim != 1:
        raise MetricsError("rows and seconds must be 1-D arrays of the same length")
    return _nnls_from_stats(
        float(b.size), float(b.sum()), float(b @ b), float(s.sum()), float(b @ s), float(s @ s)
    )


class OnlineServiceFit:
    """Refit ``s(b) = a + c·b`` as batches arrive, forgetting old batches geometrically.

    ``half_life`` is in batches: a batch that many batches old weighs half as much,
    so the fit tracks a pipeline whose costs drift (new code, new hardware).
    """

    def __init__(self, half_life: float = 1000.0) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self._decay = 0.5 ** (1.0 / half_life)
        self._stats = np.zeros(6)

    def update(self, rows: ArrayLike, seconds: ArrayLike) -> None:
        """Add batches in arrival order."""
        b = np.atleast_1d(np.asarray(rows, dtype=np.float64))
        s = np.atleast_1d(np.asarray(seconds, dtype=np.float64))
        if b.shape != s.shape:
            raise ValueError("rows and seconds must have the same length")
        m = b.size
        wts = self._decay ** np.arange(m - 1, -1, -1, dtype=np.float64)
        new = np.array([wts.sum(), wts @ b, wts @ (b * b), wts @ s, wts @ (b * s), wts @ (s * s)])
        self._stats = self._stats * self._decay**m + new

    def fit(self) -> ServiceFit:
        return _nnls_from_stats(*(float(x) for x in self._stats))


def arrival_rate(time_s: ArrayLike, rows: ArrayLike) -> float:
    """Events per second entering the pipeline, from the first stage's batches.

    The rows finished at the first timestamp arrived before the observed span, so
    they are left out: ``(Σ rows − first rows) / (last − first time)``, which is
    unbiased for a steady stream (plain ``Σ rows / span`` overstates λ by 1/n).
    """
    t = np.asarray(time_s, dtype=np.float64)
    r = np.asarray(rows, dtype=np.float64)
    if t.size < 2:
        raise MetricsError("need at least two batches of the first stage to measure λ")
    order = np.argsort(t, kind="stable")
    t, r = t[order], r[order]
    span = t[-1] - t[0]
    if span <= 0:
        raise MetricsError("all first-stage batches have the same time_s; cannot measure λ")
    return float((r.sum() - r[0]) / span)


# The middle 80% of a stage's batch sizes must span at least this fraction of the
# larger end for ``a`` (per batch) and ``c`` (per event) to be told apart.
MIN_BATCH_SPREAD = 0.1
VARY_BATCHES_HINT = (
    "to let the optimizer choose batch sizes, measure batches of several sizes (runs "
    "with different batching.max_rows, or a batching.max_delay short enough that some "
    "batches flush part-full)"
)


@dataclass(frozen=True)
class StageMetrics:
    name: str
    fit: ServiceFit
    workers: int  # as last measured
    batch: int  # median rows per batch
    rows_p10: float = 0.0  # 10th and 90th percentiles of rows per batch
    rows_p90: float = 0.0
    batches: int = 0  # batches fitted on
    identified: bool = True  # batch sizes varied enough to separate a from c
    set_aside: int = 0  # batches left out of the fit as outliers (see fit_robustly)

    def spread_text(self) -> str:
        """How (little) this stage's batch sizes varied, for messages."""
        if self.rows_p10 == self.rows_p90:
            return f"all {self.batches} batches had {self.batch} rows"
        return (
            f"the middle 80% of its {self.batches} batches span only "
            f"{self.rows_p10:.0f}..{self.rows_p90:.0f} rows"
        )


OUTLIER_SCALE = 10.0  # robust standard deviations past which a batch is set aside


def fit_robustly(rows: np.ndarray, seconds: np.ndarray) -> tuple[ServiceFit, np.ndarray]:
    """``fit_service_time`` without the batches that took far longer than the rest say
    they should, and which were kept. One 11-second batch (the kernels' compilation)
    among 20-millisecond ones made the plain fit's error 1.5 s. A batch is set aside
    when its residual passes ``OUTLIER_SCALE`` robust standard deviations (1.4826 times
    the median absolute residual) of a first fit on every batch, then the rest refitted;
    only slow ones, and never more than half."""
    fit = fit_service_time(rows, seconds)
    residual = seconds - (fit.a + fit.c * rows)
    spread = 1.4826 * float(np.median(np.abs(residual - np.median(residual))))
    keep = residual <= np.median(residual) + OUTLIER_SCALE * max(spread, 1e-9)
    if keep.all() or keep.sum() < max(3, rows.size // 2):
        return fit, np.ones(rows.size, dtype=bool)
    return fit_service_time(rows[keep], seconds[keep]), keep


def batches_identify_fixed_cost(rows: ArrayLike) -> tuple[bool, float, float]:
    """Whether batch sizes vary enough to separate the per-batch cost from the per-event cost.

    With every batch the same size ``b`` only ``a + c·b`` is measured, and any split of
    it fits equally well (the NNLS tie-break gives ``a = 0``, which makes batches of one
    look free). Uses the 10th..90th percentiles, so one odd batch (the last, part-full
    one) among many does not count as variation. Returns (identified, p10, p90).
    """
    r = np.asarray(rows, dtype=np.float64)
    p10, p90 = (float(x) for x in np.quantile(r, [0.1, 0.9]))
    return p90 > 0 and p90 - p10 >= MIN_BATCH_SPREAD * p90, p10, p90


@dataclass(frozen=True)
class MetricsFit:
    arrival_rate: float
    stages: list[StageMetrics]

    def warnings(self) -> list[str]:
        """Plain-language caveats of this fit: batches set aside as outliers, stages whose
        batch size is kept as measured."""
        out = [
            f"stage {s.name}: {s.set_aside} of {s.batches + s.set_aside} batches took far"
            " longer than the fit of the others and were left out of it (the first batch"
            " of a run compiles kernels, say)"
            for s in self.stages
            if s.set_aside
        ]
        fixed = [s for s in self.stages if not s.identified]
        if not fixed:
            return out
        groups: dict[str, list[str]] = {}
        for s in fixed:
            groups.setdefault(s.spread_text(), []).append(s.name)
        detail = "; ".join(f"{', '.join(names)}: {text}" for text, names in groups.items())
        sizes = {s.batch for s in fixed}
        kept = (
            f"{fixed[0].batch} rows"
            if len(sizes) == 1
            else ", ".join(f"{s.batch} rows for {s.name}" for s in fixed)
        )
        return [
            *out,
            "batch sizes did not vary enough to tell a stage's fixed cost per batch from "
            f"its cost per event ({detail}), so these stages keep their measured batch size "
            f"({kept}) and only their workers are optimised; {VARY_BATCHES_HINT}",
        ]


def read_metrics(path: str | Path) -> pd.DataFrame:
    """Read ``batches.parquet`` (``path`` is the file or its directory) and check its schema."""
    p = Path(path)
    if p.is_dir():
        p = p / "batches.parquet"
    if not p.exists():
        raise MetricsError(f"no metrics file at {p}")
    try:
        df = pd.read_parquet(p)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise MetricsError(f"cannot read {p}: {exc}") from None
    missing = [c for c in METRIC_COLUMNS if c not in df.columns]
    if missing:
        raise MetricsError(f"{p}: missing column(s) {missing}; expected {list(METRIC_COLUMNS)}")
    for col, kind in METRIC_COLUMNS.items():
        if kind != "O" and df[col].dtype.kind not in ("i", "u", "f"):
            raise MetricsError(f"{p}: column {col!r} must be numeric, not {df[col].dtype}")
    if df.empty:
        raise MetricsError(f"{p}: no batches")
    seconds = df["seconds"].to_numpy(np.float64)
    workers = df["workers"].to_numpy()
    checks = (  # what a bad value is, said of it
        ("stage", df["stage"].isna().to_numpy(), "a null stage name"),
        ("time_s", ~np.isfinite(df["time_s"].to_numpy(np.float64)), "{} is not a finite time"),
        ("seconds", ~(np.isfinite(seconds) & (seconds >= 0)), "{} is not a duration"),
        ("rows", df["rows"].to_numpy() <= 0, "{} is not a positive row count"),
        ("workers", workers < 1, "{} is not a positive worker count"),
        ("workers", workers > MAX_WORKERS, f"{{}} is more than the {MAX_WORKERS} workers modelled"),
    )
    for column, bad, what in checks:
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            said = what.format(df[column].iloc[row])
            raise MetricsError(f"{p}: column {column!r}, row {row}: {said}")
    return df


def _stage_order(names: Sequence[str]) -> list[str]:
    known = [n for n in PIPELINE_ORDER if n in names]
    return known + [n for n in names if n not in PIPELINE_ORDER]


def fit_metrics(df: pd.DataFrame, recent: int | None = 5000) -> MetricsFit:
    """Per-stage service fits over the ``recent`` latest batches, λ from the first stage."""
    df = df.sort_values("time_s", kind="stable")
    names = _stage_order(list(dict.fromkeys(df["stage"].astype(str))))
    stages = []
    for name in names:
        part = df[df["stage"].astype(str) == name]
        if recent is not None:
            part = part.tail(recent)
        rows = part["rows"].to_numpy().astype(np.float64)
        fit, kept = fit_robustly(rows, part["seconds"].to_numpy(np.float64))
        identified, p10, p90 = batches_identify_fixed_cost(rows[kept])
        stages.append(
            StageMetrics(
                name=name,
                fit=fit,
                workers=int(part["workers"].iloc[-1]),
                batch=max(1, round(float(part["rows"].median()))),
                rows_p10=p10,
                rows_p90=p90,
                batches=int(kept.sum()),
                identified=identified,
                set_aside=int((~kept).sum()),
            )
        )
    first = df[df["stage"].astype(str) == names[0]]
    lam = arrival_rate(first["time_s"].to_numpy(), first["rows"].to_numpy())
    return MetricsFit(arrival_rate=lam, stages=stages)


def problem_from_metrics(
    fit: MetricsFit,
    budget: float,
    sla: str | int,
    price: float = 0.05,
    failure_prob: float = 0.01,
    weights: Weights | None = None,
    max_workers: int = 64,
    max_batch: int = 65536,
) -> Problem:
    """The allocation problem the measured pipeline poses.

    A stage whose batch sizes did not vary (``identified`` false) keeps its measured
    batch size: its ``a``/``c`` split is arbitrary, and at that one size every split
    predicts the same, so the answer does not rest on the arbitrary part.
    """
    stages = []
    for st in fit.stages:
        a, c = st.fit.a, st.fit.c
        if a + c <= 0:
            raise MetricsError(f"stage {st.name}: measured service time is zero")
        stages.append(
            Stage(
                name=st.name,
                a=a,
                c=c,
                price=price,
                workers=(1, max(max_workers, st.workers)),
                batch=(1, max(max_batch, st.batch)) if st.identified else (st.batch, st.batch),
            )
        )
    return Problem(
        arrival_rate=fit.arrival_rate,
        weights=weights or Weights(),
        budget=budget,
        sla=sla,  # type: ignore[arg-type]  # parsed by DurationMs
        failure_prob=failure_prob,
        stages=stages,
    )
