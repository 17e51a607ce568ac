"""The optimisation problem as written by people: pydantic models, YAML loading, test instances.

Every model forbids unknown fields so a typo in a problem file is an error that
names its path (``stages[1].workers``) rather than a silently ignored setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gpu_engine.config.loading import not_utf8, read_yaml
from gpu_engine.config.models import MAX_BATCH_ROWS
from gpu_engine.units import DurationMs

NonNeg = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
# Far below MIN_RATE the model's times leave float64 (a batch of 65,536 at 1e-300
# events/s takes 6.6e304 s to fill; sums of such times overflow to inf and read as
# unstable queues), and a batch bound past 2^63 breaks the int64 batch search; such
# problems are refused with the reason rather than mis-solved or a traceback.
MIN_RATE = 1e-6  # events/s: one event per 11.6 days
MAX_BATCH = MAX_BATCH_ROWS  # rows per batch: what the engine's batching.max_rows takes
MAX_WORKERS = 4096  # per stage


class ProblemError(ValueError):
    """A problem file or command-line problem that cannot be solved as written."""


class Weights(BaseModel):
    """Objective weights; the defaults are the issue's 0.4 / 0.3 / 0.3."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    latency: NonNeg = 0.4
    cost: NonNeg = 0.3
    reliability: NonNeg = 0.3

    @model_validator(mode="after")
    def _not_all_zero(self) -> Weights:
        if self.latency + self.cost + self.reliability <= 0:
            raise ValueError("at least one weight must be positive")
        return self


class Prices(BaseModel):
    """Default price per worker by device, used by stages that give no ``price``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cpu: NonNeg = 0.05
    gpu: NonNeg = 0.5


class Stage(BaseModel):
    """One pipeline stage: service time ``a + c·b`` seconds per batch of ``b`` events."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1)]
    a: NonNeg
    c: NonNeg
    price: NonNeg | None = None
    device: Literal["cpu", "gpu"] = "cpu"
    workers: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (1, 64)
    batch: tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]] = (1, 65536)

    @model_validator(mode="after")
    def _check(self) -> Stage:
        if self.a + self.c <= 0:
            raise ValueError("a stage needs a positive service time: a + c must be > 0")
        if self.workers[0] > self.workers[1]:
            raise ValueError(f"workers bounds {list(self.workers)} are not [low, high]")
        if self.batch[0] > self.batch[1]:
            raise ValueError(f"batch bounds {list(self.batch)} are not [low, high]")
        if self.workers[1] > MAX_WORKERS:
            raise ValueError(f"at most {MAX_WORKERS} workers per stage are supported")
        if self.batch[1] > MAX_BATCH:
            raise ValueError(f"batch sizes up to {MAX_BATCH} (2^31 - 1) rows are supported")
        return self


class Problem(BaseModel):
    """A whole allocation problem: arrival rate, stages, objective weights and limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    arrival_rate: Positive
    weights: Weights = Weights()
    budget: Positive
    sla: DurationMs
    failure_prob: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.01
    prices: Prices = Prices()
    stages: Annotated[list[Stage], Field(min_length=1)]

    @field_validator("arrival_rate")
    @classmethod
    def _rate_in_range(cls, value: float) -> float:
        if value < MIN_RATE:
            raise ValueError(
                f"{value:g} events/s is below {MIN_RATE:g} (one event per 11.6 days), the "
                "slowest stream the model accepts: far below it the batch-fill times "
                "(b-1)/arrival_rate overflow"
            )
        return value

    @field_validator("sla")
    @classmethod
    def _sla_positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("sla must be positive")
        return value

    @model_validator(mode="after")
    def _check(self) -> Problem:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        return self

    @property
    def sla_s(self) -> float:
        """The SLA in seconds (the model's time unit)."""
        return self.sla / 1000.0

    def stage_price(self, i: int) -> float:
        """Price of one worker of stage ``i``: its own price, else its device's default."""
        stage = self.stages[i]
        if stage.price is not None:
            return stage.price
        return self.prices.gpu if stage.device == "gpu" else self.prices.cpu


def format_validation_error(exc: ValidationError, names: Mapping[str, str] | None = None) -> str:
    """One line per error, each naming the field path as written in the YAML, or, for a
    top-level field in ``names`` (a command-line option, say), by that name."""
    lines = []
    for err in exc.errors():
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{(names or {}).get(path) or path or '<root>'}: {msg}")
    return "\n".join(lines)


def parse_problem(data: object) -> Problem:
    """Validate already-parsed YAML/JSON data; errors name the offending field path."""
    if not isinstance(data, dict):
        raise ProblemError("<root>: a problem must be a mapping of fields")
    try:
        return Problem.model_validate(data)
    except ValidationError as exc:
        raise ProblemError(format_validation_error(exc)) from None


def load_problem(path: str | Path) -> Problem:
    """Read and validate a problem YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProblemError(f"cannot read problem file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # else a traceback naming neither file nor line
        raise ProblemError(f"cannot read problem file {path}: {not_utf8(exc)}") from None
    try:
        data = read_yaml(text, str(path))
    except yaml.YAMLError as exc:
        raise ProblemError(f"{path} is not valid YAML: {exc}") from None
    return parse_problem(data)


def random_problems(
    n: int, seed: int = 0, stages: int = 3, max_workers: int = 64, max_batch: int = 65536
) -> list[Problem]:
    """Random instances for benchmarks and tests; a fair share are infeasible by design.

    Loads range from a fraction of a worker to beyond ``max_workers``, SLAs and
    budgets from generous to impossible, so every constraint gets to bind.
    """
    rng = np.random.default_rng(seed)
    names = ["validate", "aggregate", "emit", "enrich", "join", "sink", "index", "store"]
    out = []
    for _ in range(n):
        lam = float(10 ** rng.uniform(4.0, 6.3))
        stage_list = []
        for i in range(stages):
            gpu = bool(rng.random() < 0.2)
            stage_list.append(
                Stage(
                    name=names[i % len(names)] + ("" if i < len(names) else str(i)),
                    a=float(10 ** rng.uniform(-4.0, -2.7)),
                    c=float(10 ** rng.uniform(-7.5, -4.6)),
                    price=float(rng.choice([0.05, 0.08])) if not gpu else 0.4,
                    device="gpu" if gpu else "cpu",
                    workers=(1, max_workers),
                    batch=(1, max_batch),
                )
            )
        kind = rng.random()
        if kind < 0.2:
            weights = Weights(latency=0.0, cost=1.0, reliability=0.0)
        elif kind < 0.6:
            weights = Weights()
        else:
            w = rng.dirichlet([1.0, 1.0, 1.0])
            weights = Weights(latency=float(w[0]), cost=float(w[1]), reliability=float(w[2]))
        out.append(
            Problem(
                arrival_rate=lam,
                weights=weights,
                budget=float(round(10 ** rng.uniform(-1.0, 0.9), 3)),
                sla=int(10 ** rng.uniform(0.7, 2.4)),
                failure_prob=float(10 ** rng.uniform(-3.0, -1.0)),
                stages=stage_list,
            )
        )
    return out
