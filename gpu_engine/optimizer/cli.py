"""``gpu-engine optimize``: recommend workers, batch sizes and batch delays, as JSON."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gpu_engine.commands.options import Given, duration_ms_arg, given_options
from gpu_engine.optimizer.problem import (
    MAX_BATCH,
    MAX_WORKERS,
    ProblemError,
    Weights,
    format_validation_error,
    load_problem,
)

if TYPE_CHECKING:  # torch (via the solver) is imported only when the command runs
    import torch

    from gpu_engine.optimizer.fit import MetricsFit, StageMetrics
    from gpu_engine.optimizer.problem import Problem
    from gpu_engine.optimizer.solver import Allocation

EXIT_FEASIBLE, EXIT_INFEASIBLE, EXIT_BAD_INPUT = 0, 1, 2

EPILOG = """\
exit status: 0 a feasible allocation was found; 1 the problem is infeasible (the
JSON says which constraint binds and why; "stages" then holds the allocation closest
to feasible); 2 bad input (the error names the field, e.g. stages[1].workers).

with --metrics, "warnings" (also printed to stderr) lists what the measurements cannot
tell: a stage whose batches all had about one size keeps that batch size, and its "a"
and "c" are null (only their sum at that size, "service_s_at_batch", is known).
"""


def register(subparsers: Any) -> None:
    """Add the ``optimize`` subcommand to the ``gpu-engine`` parser."""
    p = subparsers.add_parser(
        "optimize",
        help="recommend workers, batch size and batch delay per stage",
        description=(
            "Choose workers, batch size and batch delay per stage so that mean latency "
            "meets the SLA at the lowest cost and the highest reliability, either for a "
            "problem file or for the pipeline measured in a metrics directory."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--problem", metavar="FILE.yaml", help="problem file (stages, λ, limits)")
    src.add_argument("--metrics", metavar="DIR", help="metrics directory with batches.parquet")
    fit: dict[str, Any] = {"action": Given}  # options of the --metrics fit only
    p.add_argument("--budget", type=float, help="with --metrics: upper bound on total price",
                   **fit)  # fmt: skip
    p.add_argument("--sla", type=duration_ms_arg,
                   help="with --metrics: upper bound on mean latency, e.g. 50ms (a number: ms)",
                   **fit)  # fmt: skip
    p.add_argument("--price", type=float, default=0.05, help="with --metrics: price per worker",
                   **fit)  # fmt: skip
    p.add_argument("--failure-prob", type=float, default=0.01,
                   help="with --metrics: per-worker failure probability",
                   **fit)  # fmt: skip
    p.add_argument("--weights", default="0.4,0.3,0.3",
                   help="with --metrics: latency,cost,reliability objective weights",
                   **fit)  # fmt: skip
    p.add_argument("--max-workers", type=_int_in(1, MAX_WORKERS), default=64,
                   help="with --metrics: most workers a stage", **fit)  # fmt: skip
    p.add_argument("--max-batch", type=_int_in(1, MAX_BATCH), default=65536,
                   help="with --metrics: largest batch", **fit)  # fmt: skip
    p.add_argument("--recent", type=_int_in(1), default=5000,
                   help="with --metrics: batches per stage to fit on", **fit)  # fmt: skip
    p.add_argument("--iterations", type=_int_in(1), default=1000)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.set_defaults(func=run)


def _int_in(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high``, so that a bad value is an
    error naming its option (``--iterations -5`` ran no iterations and reported the start,
    ``--max-workers 0`` quietly meant the measured workers)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{text!r} is below {low}")
        if high is not None and value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is above {high}, the most supported")
        return value

    parse.__name__ = "whole number"  # argparse names the type in some messages
    return parse


def _error(msg: str) -> int:
    print(f"gpu-engine optimize: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ProblemError("--device cuda: no CUDA device is available")
    return torch.device(name)


def _alloc_json(alloc: Allocation) -> dict[str, Any]:
    return alloc.model_dump()


def _stage_fit_json(s: StageMetrics) -> dict[str, Any]:
    """One stage's fit; ``a`` and ``c`` are null where the batch sizes could not separate
    them (only their sum at the measured batch size, ``service_s_at_batch``, is known)."""
    return {
        "name": s.name,
        "a": s.fit.a if s.identified else None,
        "c": s.fit.c if s.identified else None,
        "rmse_s": s.fit.rmse,
        "service_s_at_batch": s.fit.a + s.fit.c * s.batch,
        "batch_rows": {"median": s.batch, "p10": s.rows_p10, "p90": s.rows_p90},
        "batches": s.batches,
        "batch_identified": s.identified,
    }


def _clean(obj: Any) -> Any:
    """Strict JSON: an infinite latency (unstable queue) becomes null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def _print(obj: Any) -> None:
    print(json.dumps(_clean(obj), indent=2, allow_nan=False))


# The problem's fields that options set, named as the options in errors.
_OPTION_OF_FIELD = {
    "budget": "argument --budget",
    "sla": "argument --sla",
    "price": "argument --price",
    "failure_prob": "argument --failure-prob",
}


def run(args: argparse.Namespace) -> int:
    """Solve and print JSON; see ``EPILOG`` for the exit status."""
    from gpu_engine.optimizer.fit import MetricsError

    try:
        device = _device(args.device)
        if args.problem:
            return _solve_problem_file(args, device)
        return _solve_from_metrics(args, device)
    except (ProblemError, MetricsError) as exc:
        return _error(str(exc))


def _solve_problem_file(args: argparse.Namespace, device: torch.device) -> int:
    """``--problem FILE``: the file states everything, so the metrics options are refused."""
    from gpu_engine.optimizer.solver import solve

    ignored = given_options(args)
    if ignored:
        options = ", ".join(ignored)
        return _error(f"{options}: only with --metrics (a --problem FILE states its own)")
    alloc = solve([load_problem(args.problem)], iterations=args.iterations, device=device)[0]
    _print(_alloc_json(alloc))
    return EXIT_FEASIBLE if alloc.feasible else EXIT_INFEASIBLE


def _solve_from_metrics(args: argparse.Namespace, device: torch.device) -> int:
    """``--metrics FILE``: fit the stages from a run's metrics, then print the recommended
    allocation beside what the current one is predicted to give."""
    from gpu_engine.optimizer.fit import fit_metrics, problem_from_metrics, read_metrics
    from gpu_engine.optimizer.solver import solve

    if args.budget is None or args.sla is None:
        return _error("--metrics needs --budget and --sla")
    weights = _weights(args.weights)
    if weights is None:
        return _error(f"--weights {args.weights!r}: give three non-negative numbers a,b,c")
    fit = fit_metrics(read_metrics(args.metrics), recent=args.recent)
    try:
        problem = problem_from_metrics(
            fit,
            budget=args.budget,
            sla=args.sla,
            price=args.price,
            failure_prob=args.failure_prob,
            weights=weights,
            max_workers=args.max_workers,
            max_batch=args.max_batch,
        )
    except ValidationError as exc:
        return _error(format_validation_error(exc, _OPTION_OF_FIELD))
    alloc = solve([problem], iterations=args.iterations, device=device)[0]
    out = {
        "recommended": _alloc_json(alloc),
        "current": _current_json(fit, problem),
        "fit": {
            "arrival_rate": fit.arrival_rate,
            "stages": [_stage_fit_json(s) for s in fit.stages],
        },
        "warnings": fit.warnings(),
    }
    for warning in out["warnings"]:
        print(f"gpu-engine optimize: warning: {warning}", file=sys.stderr)
    _print(out)
    return EXIT_FEASIBLE if alloc.feasible else EXIT_INFEASIBLE


def _weights(text: str) -> Weights | None:
    """``--weights a,b,c`` (latency, cost, reliability); None when it is not that."""
    try:
        parts = [float(x) for x in text.split(",")]
        if len(parts) != 3:
            return None
        return Weights(latency=parts[0], cost=parts[1], reliability=parts[2])
    except (ValueError, ValidationError):
        return None


def _current_json(fit: MetricsFit, problem: Problem) -> dict[str, Any]:
    """What the model predicts for the allocation the metrics were measured under."""
    from gpu_engine.optimizer.model import predict

    current = predict(problem, [s.workers for s in fit.stages], [s.batch for s in fit.stages])
    return {
        "stages": [
            {
                "name": s.name,
                "workers": s.workers,
                "batch": s.batch,
                "max_delay_ms": s.batch / fit.arrival_rate * 1000.0,
                "load": current.stage_load[i],
            }
            for i, s in enumerate(fit.stages)
        ],
        "stable": current.stable,
        "latency_s": current.latency_s,
        "latency_p99_s": current.latency_p99_s,
        "cost": current.cost,
        "reliability": current.reliability,
        "objective": current.objective,
        "meets_sla": current.stable and current.latency_s <= problem.sla_s,
        "within_budget": current.cost <= problem.budget,
    }


def main(argv: list[str] | None = None) -> int:
    """Run ``optimize`` on its own (``python -m gpu_engine.optimizer.cli --problem F``)."""
    parser = argparse.ArgumentParser(prog="gpu-engine")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["optimize", *(argv if argv is not None else sys.argv[1:])])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
