"""Pydantic models of the engine configuration.

Every model forbids unknown fields, so a misspelled key is an error at start-up
rather than a silently ignored setting. Checks that span several sections
(an aggregation naming a column of the schema, say) live in
:mod:`gpu_engine.config.checks` so their messages can name the exact path.
"""

from __future__ import annotations

import math
import sys
import unicodedata
from collections import Counter
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from gpu_engine.units import format_duration_ms, parse_duration_ms

FieldType = Literal[
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "float32",
    "float64",
    "string",
    "timestamp",
]
INTEGER_TYPES = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"})
FLOAT_TYPES = frozenset({"float32", "float64"})
NUMERIC_TYPES = INTEGER_TYPES | FLOAT_TYPES | {"timestamp"}
# The values each integer type (and a timestamp, as epoch milliseconds) can hold.
INTEGER_RANGES = {
    **{f"int{b}": (-(2 ** (b - 1)), 2 ** (b - 1) - 1) for b in (8, 16, 32, 64)},
    **{f"uint{b}": (0, 2**b - 1) for b in (8, 16, 32)},
    "timestamp": (-(2**63), 2**63 - 1),
}
FLOAT32_MAX = 3.4028234663852886e38

# Columns the quarantine output adds to each rejected row (``validation.QUARANTINE_COLUMNS``):
# a schema field of the same name would be written twice there.
RESERVED_FIELD_NAMES = frozenset({"_reason_code", "_field", "_reason", "_source", "_row"})
# Columns every window output starts with, so no key or aggregation may take them.
WINDOW_COLUMNS = frozenset({"window_start", "window_end"})
# A sliding window's size / slide: how many windows each event falls in, and how many
# panes each window combines at emission. Emission allocates one group per live pane and
# window over it (``PaneState.window_groups``), so memory grows with this ratio: 1,000
# costs 24 KB per live key and pane, where 1h / 1ms (3.6M) asked for 15 GiB at once.
MAX_WINDOWS_PER_EVENT = 1_000
# The longest window or aggregation name: a window's name is a folder of the outputs
# (``windows/<name>/``, ``late/<name>/``), and 255 bytes is the usual limit of one path
# component; an aggregation's name is an output column.
MAX_NAME_LENGTH = 100

AggregationOp = Literal[
    "count", "sum", "mean", "min", "max", "std", "var", "quantile", "count_distinct"
]
Scalar = int | float | str | bool


def value_problem(field_type: str, value: Scalar) -> str | None:
    """Why ``value`` can never equal a value of a ``field_type`` column (None if it can).

    Checked at load, because the engine casts ``where`` and ``allowed`` values to the
    column's type only when the first batch arrives, and fails there. A number for a
    float field is rounded to its type (0.1 is float32 0.1), unless that makes it zero.
    """
    shown = str(value).lower() if isinstance(value, bool) else repr(value)  # as in YAML
    wrong = f"{shown} is not of type {field_type}"
    if field_type == "string":
        return None if isinstance(value, str) else wrong
    if field_type == "bool":
        return None if isinstance(value, bool) else f"{wrong} (true or false)"
    if isinstance(value, bool | str):
        return wrong
    if not math.isfinite(value):
        return None if field_type in FLOAT_TYPES else wrong
    if field_type in FLOAT_TYPES:
        if field_type == "float32" and abs(value) > FLOAT32_MAX:
            return f"{value!r} does not fit float32"
        if field_type == "float32" and value != 0 and np.float32(value) == 0:
            return f"{value!r} is 0.0 as a float32 (values are compared as the field's type)"
        return None
    if isinstance(value, float) and not value.is_integer():
        return f"{value!r} is not a whole number, as {field_type} needs"
    lo, hi = INTEGER_RANGES[field_type]
    if not lo <= value <= hi:
        return f"{value!r} does not fit {field_type} ({lo} to {hi})"
    return None


def _shown_bound(bound: float) -> str:
    """A min/max as YAML would write it: 300, not 300.0 (an int as it is, exactly)."""
    if isinstance(bound, int):
        return str(bound)
    return str(int(bound)) if math.isfinite(bound) and bound.is_integer() else repr(bound)


def _shown_name(name: str) -> str:
    """A name as an error shows it: quoted, and cut short when long."""
    return repr(name) if len(name) <= 40 else f"{name[:40]!r}... ({len(name)} characters)"


def _output_name(name: str, names: str) -> str:
    """``name``, if it can name an output (a window's or an aggregation's, which ``names``
    says), else the ValueError that says why."""
    problem = None
    control = next((c for c in name if unicodedata.category(c) == "Cc"), None)
    if not name:
        problem = "the name is empty"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"name {_shown_name(name)} is too long: at most {MAX_NAME_LENGTH} characters"
    elif control is not None:
        problem = f"name {_shown_name(name)} holds control character {control!r}"
    if problem is not None:
        raise ValueError(f"{problem} (it names {names})")
    return name


def repeated(names: list[str]) -> list[str]:
    """The names that occur more than once in ``names``, sorted."""
    return sorted(name for name, n in Counter(names).items() if n > 1)


def _duration_ms(value: object) -> int:
    """A duration in ms; a negative one is named as such, not as unreadable text."""
    if isinstance(value, str) and value.strip().startswith("-"):
        raise ValueError(f"duration {value.strip()!r} is negative; durations are 0 or more")
    ms = parse_duration_ms(value)
    if ms > MAX_EVENT_TIME_BOUND_MS:
        raise ValueError(
            f"duration {value!r} is {ms:,} ms, beyond 2^61 ms (73 million years): window"
            " arithmetic (an event time plus a size, the watermark's sentinels at ±2^62)"
            " needs the headroom"
        )
    return ms


DurationMs = Annotated[int, BeforeValidator(_duration_ms)]
"""A duration parsed from text (``50ms``, ``2s``), stored as integer milliseconds."""

# Event times outside this range are "absurd" unless the time field says otherwise:
# before the epoch, or after 2100-01-01.
DEFAULT_MIN_EVENT_TIME_MS = 0
DEFAULT_MAX_EVENT_TIME_MS = 4_102_444_800_000
MAX_EVENT_TIME_BOUND_MS = 2**61  # the widest a time field's min/max (and a duration) may be
# The most rows a batch may hold: a cuDF column's (int32 sizes), and far past any batch
# that helps (the kernels saturate a card at a few million rows).
MAX_BATCH_ROWS = 2**31 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def time_zone_problem(tz: str) -> str | None:
    """Why ``tz`` cannot be a time zone of the engine's outputs (None when it can): they
    are Arrow timestamps in that zone, read by Arrow's compute and by Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not tz.strip():
        return "tz must name a time zone (leave it out for naive UTC times)"
    zoned = pa.array([0], pa.timestamp("ms", tz=tz))
    try:
        pc.hour(zoned)  # Arrow's own database
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        return f"tz {tz!r} is not a time zone Arrow knows ({error})"
    try:
        zoned.to_pylist()  # and Python's, which pandas outputs and messages use
    except (pa.ArrowInvalid, ValueError, KeyError) as error:  # KeyError: zoneinfo's
        return f"tz {tz!r} is not a time zone Python can read ({error})"  # (pyarrow 22)
    return None


class FieldSpec(_Strict):
    """One column of the input schema and the rules its values must satisfy."""

    type: FieldType
    required: bool = False  # says the default aloud: not nullable (refused with nullable)
    nullable: bool = False  # a null, or a missing column, fails the row unless nullable
    min: int | float | None = None  # an int is kept exact (int64 bounds past 2^53)
    max: int | float | None = None
    allowed: list[Scalar] | None = None
    allow_nan: bool = False
    tz: str | None = None  # a timestamp field's output zone: IANA name or +HH:MM

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.required and self.nullable:
            raise ValueError("a required field cannot be nullable")
        if (self.min is not None or self.max is not None) and self.type not in NUMERIC_TYPES:
            raise ValueError(f"min/max need a numeric type, not {self.type}")
        for which, bound in (("min", self.min), ("max", self.max)):
            if isinstance(bound, float) and math.isnan(bound):  # NaN compares false always
                raise ValueError(f"{which} is NaN, which bounds nothing (leave it out)")
            if isinstance(bound, int) and abs(bound) > sys.float_info.max:
                bits = bound.bit_length()
                raise ValueError(f"{which} ({bits} bits) is beyond float64's range (1.8e308)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.type in INTEGER_RANGES:  # a bound past the type's range leaves no value
            lo, hi = INTEGER_RANGES[self.type]
            if self.min is not None and self.min > hi:
                raise ValueError(
                    f"min {_shown_bound(self.min)} is above {self.type}'s largest value {hi}:"
                    " no value can pass it"
                )
            if self.max is not None and self.max < lo:
                raise ValueError(
                    f"max {_shown_bound(self.max)} is below {self.type}'s smallest value {lo}:"
                    " no value can pass it"
                )
        if self.type == "float32":  # bounds are compared as float32: they must be one
            for which, bound in (("min", self.min), ("max", self.max)):
                problem = None if bound is None else value_problem("float32", bound)
                if problem is not None:
                    raise ValueError(f"{which} {problem}")
        if self.allow_nan and self.type not in FLOAT_TYPES:
            raise ValueError(f"allow_nan applies to float fields only, not {self.type}")
        if self.tz is not None:
            if self.type != "timestamp":
                raise ValueError(f"tz applies to timestamp fields only, not {self.type}")
            problem = time_zone_problem(self.tz)
            if problem is not None:
                raise ValueError(problem)
        if self.allowed is not None:
            if not self.allowed:
                raise ValueError("allowed must list at least one value")
            for value in self.allowed:
                problem = value_problem(self.type, value)
                if problem is not None:
                    raise ValueError(f"allowed value {problem}")
            if (self.min is not None or self.max is not None) and not any(
                self._within_bounds(value) for value in self.allowed
            ):
                bounds = " and ".join(
                    f"{which} {_shown_bound(bound)}"
                    for which, bound in (("min", self.min), ("max", self.max))
                    if bound is not None
                )
                raise ValueError(
                    f"none of the allowed values {self.allowed} is within {bounds}:"
                    " no value can pass both"
                )
        return self

    def _within_bounds(self, value: Scalar) -> bool:
        """Whether an allowed (numeric) ``value`` passes min and max, compared as the
        field's type: float32 for a float32 field, exactly for an int64 one (as its rows
        are, past 2^53 too), else float64 (so a value that rounds onto a bound counts as
        within it)."""
        if self.type == "int64" and isinstance(value, int):
            return (self.min is None or value >= self.min) and (
                self.max is None or value <= self.max
            )
        cast = np.float32 if self.type == "float32" else np.float64
        v = cast(value)
        return (self.min is None or bool(v >= cast(self.min))) and (
            self.max is None or bool(v <= cast(self.max))
        )


class SchemaConfig(_Strict):
    """The columns of an event and which one carries its event time."""

    time: str
    fields: dict[str, FieldSpec]

    @field_validator("fields")
    @classmethod
    def _field_names(cls, fields: dict[str, FieldSpec]) -> dict[str, FieldSpec]:
        reserved = sorted(RESERVED_FIELD_NAMES & set(fields))
        if reserved:
            raise ValueError(
                f"field name(s) {reserved} are reserved: the quarantine output adds columns"
                f" {sorted(RESERVED_FIELD_NAMES)} to each rejected row (rename the field)"
            )
        return fields

    @model_validator(mode="after")
    def _time_field(self) -> SchemaConfig:
        if self.time not in self.fields:
            raise ValueError(f"time field {self.time!r} is not one of the fields")
        if self.fields[self.time].type not in ("int64", "timestamp"):
            raise ValueError(
                f"time field {self.time!r} must be int64 epoch milliseconds or a timestamp"
            )
        if self.fields[self.time].nullable:
            raise ValueError(f"time field {self.time!r} cannot be nullable")
        spec = self.fields[self.time]
        for bound, value in (("min", spec.min), ("max", spec.max)):
            if value is not None and abs(value) > MAX_EVENT_TIME_BOUND_MS:
                raise ValueError(
                    f"time field {self.time!r}: {bound} {value} is beyond ±2^61 ms (±73 million"
                    " years): window arithmetic (time + size, the watermark's sentinels at"
                    " ±2^62) needs the headroom"
                )
        return self


class ValidationConfig(_Strict):
    """How strictly rows are checked, and what happens to a row that fails.

    ``strict`` checks every rule. ``lenient`` checks casts, nulls, NaN/inf and the
    time field's bounds, not other fields' ``min``/``max``/``allowed``. ``off`` checks
    casts, nulls and the time field's bounds (a window needs a time), and lets NaN/inf
    through. ``on_error`` sends failing
    rows to the quarantine output (``quarantine``), counts and discards them
    (``drop``) or stops the run (``fail``).
    """

    mode: Literal["strict", "lenient", "off"] = "strict"
    on_error: Literal["quarantine", "drop", "fail"] = "quarantine"


class BatchingConfig(_Strict):
    """A micro-batch is cut at ``max_rows`` rows or ``max_delay`` after its first row."""

    max_rows: int = Field(default=65_536, ge=1, le=MAX_BATCH_ROWS)
    max_delay: DurationMs = 50


class AggregationSpec(_Strict):
    """One output column of a window: an operation over a column, optionally filtered."""

    name: str
    op: AggregationOp
    column: str | None = None
    q: float | None = None
    where: dict[str, Scalar | list[Scalar]] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _output_name(name, "an output column")

    @model_validator(mode="after")
    def _arguments(self) -> AggregationSpec:
        if self.op == "count" and self.column is not None:
            raise ValueError(
                "count takes no column (it counts events, nulls included); use a where, or"
                f" count_distinct (aggregation {self.name!r} gives column {self.column!r})"
            )
        if self.op != "count" and self.column is None:
            raise ValueError(f"op {self.op} needs a column")
        if self.op == "quantile":
            if self.q is None or not (0.0 <= self.q <= 1.0):
                raise ValueError("op quantile needs q between 0 and 1")
        elif self.q is not None:
            raise ValueError(f"q applies to op quantile only, not {self.op}")
        return self


class TopKSpec(_Strict):
    """Keep the ``k`` best keys of each window by an aggregation (ties: key ascending)."""

    by: str
    k: int = Field(ge=1)
    descending: bool = True


class WindowSpec(_Strict):
    """A keyed event-time window: tumbling(size), sliding(size, slide) or session(gap)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    type: Literal["tumbling", "sliding", "session"]
    size: DurationMs | None = None
    slide: DurationMs | None = None
    gap: DurationMs | None = None
    keys: list[str] = Field(default_factory=list)
    allowed_lateness: DurationMs = 0
    idle_timeout: DurationMs | None = None
    aggregations: list[AggregationSpec] = Field(min_length=1)
    top_k: TopKSpec | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return _output_name(name, "the output folder windows/<name>/")

    @model_validator(mode="after")
    def _shape(self) -> WindowSpec:
        if self.type == "session":
            if self.gap is None or self.gap <= 0:
                raise ValueError("a session window needs a positive gap")
            if self.size is not None or self.slide is not None:
                raise ValueError("a session window takes gap, not size or slide")
        else:
            if self.size is None or self.size <= 0:
                raise ValueError(f"a {self.type} window needs a positive size")
            if self.gap is not None:
                raise ValueError(f"gap applies to session windows, not {self.type}")
            if self.type == "tumbling" and self.slide is not None and self.slide != self.size:
                raise ValueError("a tumbling window has no slide (use type: sliding)")
            if self.type == "sliding":
                if self.slide is None or self.slide <= 0:
                    raise ValueError("a sliding window needs a positive slide")
                if self.size % self.slide:
                    raise ValueError(f"slide {self.slide}ms does not divide size {self.size}ms")
                if self.size // self.slide > MAX_WINDOWS_PER_EVENT:
                    raise ValueError(
                        f"size {format_duration_ms(self.size)} / slide"
                        f" {format_duration_ms(self.slide)} puts each event in"
                        f" {self.size // self.slide:,} windows; at most"
                        f" {MAX_WINDOWS_PER_EVENT:,} are allowed, as each window is"
                        " combined from that many panes and emission holds them all in"
                        " memory (use a larger slide)"
                    )
        if len(set(self.keys)) != len(self.keys):
            raise ValueError("keys repeat a column")
        if WINDOW_COLUMNS & set(self.keys):
            raise ValueError(
                f"key(s) {sorted(WINDOW_COLUMNS & set(self.keys))} clash with the output"
                " columns window_start and window_end"
            )
        names = [a.name for a in self.aggregations]
        if len(set(names)) != len(names):
            raise ValueError(f"aggregation names repeat: {repeated(names)}")
        clash = set(names) & (WINDOW_COLUMNS | set(self.keys))
        if clash:
            raise ValueError(f"aggregation name(s) {sorted(clash)} clash with output columns")
        if self.top_k is not None and self.type == "session":
            raise ValueError(
                "top_k applies to tumbling and sliding windows: each session is a window"
                " of its own, with one key, so there is nothing to rank"
            )
        if self.top_k is not None and self.top_k.by not in names:
            raise ValueError(f"top_k.by {self.top_k.by!r} is not an aggregation of this window")
        return self

    @property
    def effective_slide(self) -> int:
        """The distance between window starts (equal to size for tumbling windows)."""
        assert self.size is not None
        return self.slide if self.slide is not None else self.size

    @property
    def pane_ms(self) -> int:
        """Pane length: gcd(size, slide), so every event lands in exactly one pane."""
        assert self.size is not None
        return math.gcd(self.size, self.effective_slide)


class EngineConfig(_Strict):
    """The whole configuration of a pipeline run."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: SchemaConfig = Field(alias="schema")
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    windows: list[WindowSpec] = Field(min_length=1)
    backend: Literal["auto", "cpu", "cuda"] = "auto"
    workers: int | None = Field(default=None, ge=1, le=256)
    """Parallel workers (key-partitioned shards); default: ``default_workers`` (one per
    16,384 rows of a batch, at most one per CPU core) on the CPU, one on a CUDA device."""
    key_balancing: Literal["hash", "adaptive"] = "hash"
    """How keys are placed on workers: a fixed hash, or adaptive to measured per-key load
    (consistent hashing with bounded loads; moved keys take their live pane state along).
    Adaptive applies to tumbling and sliding windows on the CPU; session windows, and
    every window on a CUDA device, keep the hash."""
    device_memory_limit: ByteSize | None = None
    """Cap on window state in device memory (e.g. ``8GiB``); exceeding it is a clear error."""
    cuda_host_frames: Literal["device", "host"] = "device"
    """On the cuda backend, where host frames (pandas, Arrow, numpy) are prepared: their
    numeric columns uploaded once through pinned buffers and cast, validated and keyed by
    kernels (``device``), or cast, validated and prepared on the host, then uploaded
    (``host``, the earlier path, kept to compare)."""

    @field_validator("windows")
    @classmethod
    def _unique_window_names(cls, windows: list[WindowSpec]) -> list[WindowSpec]:
        names = [w.name for w in windows]
        if len(set(names)) != len(names):
            raise ValueError(f"window names repeat: {repeated(names)}")
        return windows

    @property
    def event_schema(self) -> SchemaConfig:
        """The input schema (``schema`` in YAML; the attribute name avoids pydantic's)."""
        return self.schema_
