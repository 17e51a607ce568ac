"""Checks across sections of a configuration, each problem reported with its path."""

from __future__ import annotations

from gpu_engine.config.models import FLOAT_TYPES, NUMERIC_TYPES, EngineConfig, value_problem

_NEEDS_NUMBER = {"sum", "mean", "min", "max", "std", "var", "quantile"}
# Of a timestamp field these would be sums (or squares) of epoch milliseconds, which
# DuckDB ("No function matches sum(TIMESTAMP)") and Polars refuse.
_NOT_OF_TIMESTAMPS = {"sum", "std", "var"}


def cross_check(config: EngineConfig) -> list[str]:
    """Return one message per problem, e.g. ``windows[0].aggregations[2].column: ...``."""
    fields = config.event_schema.fields
    problems: list[str] = []
    for wi, window in enumerate(config.windows):
        base = f"windows[{wi}]"
        for ki, key in enumerate(window.keys):
            if key not in fields:
                problems.append(f"{base}.keys[{ki}]: {key!r} is not a field of schema.fields")
            elif fields[key].type in FLOAT_TYPES:
                problems.append(f"{base}.keys[{ki}]: {key!r} is a float field; keys must be exact")
        for ai, agg in enumerate(window.aggregations):
            path = f"{base}.aggregations[{ai}]"
            if agg.column is not None:
                if agg.column not in fields:
                    problems.append(
                        f"{path}.column: {agg.column!r} is not a field of schema.fields"
                        " (add it there)"
                    )
                elif agg.op in _NEEDS_NUMBER and fields[agg.column].type not in NUMERIC_TYPES:
                    problems.append(
                        f"{path}.column: op {agg.op} needs a numeric column,"
                        f" {agg.column!r} is {fields[agg.column].type}"
                    )
                elif agg.op == "quantile" and fields[agg.column].type == "timestamp":
                    problems.append(
                        f"{path}.column: op quantile of timestamp field {agg.column!r}: the"
                        " sketch's 1 % relative error is of the time since 1970 (months);"
                        " use min/max, or a duration field"
                    )
                elif agg.op in _NOT_OF_TIMESTAMPS and fields[agg.column].type == "timestamp":
                    problems.append(
                        f"{path}.column: op {agg.op} of timestamp field {agg.column!r}: it would"
                        " be of milliseconds since 1970, not a time (DuckDB and Polars refuse"
                        " it); use min/max/mean, or a duration field"
                    )
            for column, value in (agg.where or {}).items():
                if column not in fields:
                    problems.append(f"{path}.where.{column}: not a field of schema.fields")
                    continue
                ftype = fields[column].type
                if value == []:  # matches no row: the count is 0 in every window, a slip
                    problems.append(f"{path}.where.{column}: an empty list matches no row")
                for v in value if isinstance(value, list) else [value]:
                    problem = value_problem(ftype, v)
                    if problem is not None:
                        problems.append(f"{path}.where.{column}: {problem}")
        if window.idle_timeout is not None and window.idle_timeout <= 0:
            problems.append(f"{base}.idle_timeout: must be positive")
    return problems
