"""``gpu-engine alerts``: acknowledge, list, and check rule files.

``ack`` appends to ``OUT/alerts_acks.jsonl``, which a running monitor polls
every tick, so the acknowledgement reaches the engine without any socket and
is recorded even if no engine is running.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from gpu_engine.errors import ConfigError

from .monitor import ACKS_FILE, ALERTS_FILE
from .rules import load_monitor_config

DEFAULT_OUT = "out"


def register(subparsers: Any) -> None:
    alerts = subparsers.add_parser("alerts", help="list and acknowledge monitor alerts")
    sub = alerts.add_subparsers(dest="alerts_command", metavar="ACTION")
    ack = sub.add_parser("ack", help="acknowledge an alert (stops its escalation)")
    ack.add_argument("alert_id", metavar="ID")
    ack.add_argument(
        "--out", default=DEFAULT_OUT, help=f"engine output directory (default {DEFAULT_OUT})"
    )
    ack.add_argument("--by", default=None, help="who acknowledges (default: the user name)")
    ack.set_defaults(func=cmd_ack)
    lst = sub.add_parser("list", help="current alert states of the latest run")
    lst.add_argument("--out", default=DEFAULT_OUT)
    lst.add_argument("--all", action="store_true", help="include inactive and resolved alerts")
    lst.add_argument("--json", action="store_true", help="one JSON object per alert")
    lst.set_defaults(func=cmd_list)
    check = sub.add_parser("check-rules", help="validate a monitor rules YAML file")
    check.add_argument("path")
    check.set_defaults(func=cmd_check)
    alerts.set_defaults(func=lambda _ns: (alerts.print_help(), 2)[1])


def read_states(out: Path, skipped: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """Latest record per alert from the last run recorded in ``OUT/alerts.jsonl``.

    Lines that are not records of the shape the monitor writes (a damaged or hand-edited
    file) are left out and their numbers added to ``skipped``, so that one bad line
    neither hides the others nor ends in a traceback; a torn last line (the engine is
    writing it) is left out silently. Raises ``OSError`` if the file cannot be read.
    """
    return _read_log(out, skipped)[0]


def _read_log(out: Path, skipped: list[int] | None) -> tuple[dict[str, dict[str, Any]], bool]:
    """:func:`read_states`, and whether that run has ended (its monitor logged
    ``monitor_stopped``): its alerts stay as it left them, and no monitor reads acks for
    them any more (a new run reads only the acks written after it started)."""
    states: dict[str, dict[str, Any]] = {}
    ended = False
    path = out / ALERTS_FILE
    if not path.exists():
        return states, ended
    lines = path.read_bytes().split(b"\n")  # bytes: a torn line may end mid-character
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except ValueError:  # UnicodeDecodeError too
            rec = None
        if not _is_record(rec):
            if number < len(lines) and skipped is not None:  # the last is unterminated
                skipped.append(number)
            continue
        if rec.get("event") == "monitor_started":
            states.clear()
            ended = False
        elif rec.get("event") == "monitor_stopped":
            ended = True
        elif rec.get("event") == "forgotten":  # its series long gone (forget_after)
            states.pop(rec.get("alert_id"), None)
        elif "alert_id" in rec:
            states[rec["alert_id"]] = rec
    return states, ended


def _is_record(rec: Any) -> bool:
    """An object, and if it is an alert's, with the fields ``list`` and ``ack`` use typed as
    ``Alert.record`` writes them (else ``"state": null`` or a string ``annotations``
    would crash the listing)."""
    if not isinstance(rec, dict):
        return False
    if "alert_id" not in rec:
        return True  # monitor_started / monitor_stopped
    annotations = rec.get("annotations") or {}
    return (
        isinstance(rec["alert_id"], str)
        and isinstance(rec.get("state"), str)
        and isinstance(rec.get("severity", ""), str)
        and isinstance(annotations, dict)
        and isinstance(annotations.get("summary", ""), str)
    )


def _load_states(out: Path, action: str) -> tuple[dict[str, dict[str, Any]], bool] | None:
    """``_read_log`` for a command: skipped lines are reported on stderr; ``None`` (the
    command exits 2) if the file cannot be read, e.g. when it is a folder."""
    skipped: list[int] = []
    try:
        log = _read_log(out, skipped)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"gpu-engine alerts {action}: cannot read {out / ALERTS_FILE}: {reason}",
            file=sys.stderr,
        )
        return None
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        what = (
            f"line that is not an alert record (line {shown})"
            if len(skipped) == 1
            else f"lines that are not alert records (lines {shown})"
        )
        print(
            f"gpu-engine alerts {action}: warning: skipped {len(skipped)} {what}"
            f" in {out / ALERTS_FILE}",
            file=sys.stderr,
        )
    return log


def cmd_ack(ns: argparse.Namespace) -> int:
    out = Path(ns.out)
    if out.exists() and not out.is_dir():  # the ack file is created inside it
        print(f"gpu-engine alerts ack: --out {out} is not a folder", file=sys.stderr)
        return 2
    log = _load_states(out, "ack")
    if log is None:
        return 2
    states, ended = log
    known = states.get(ns.alert_id)
    if known is None:  # a typo would otherwise be "acknowledged" and stop nothing
        print(f"gpu-engine alerts ack: {_unknown_alert(ns.alert_id, out, states)}", file=sys.stderr)
        return 2
    if ended:
        print(
            f"gpu-engine alerts ack: the run recorded in {out / ALERTS_FILE} has ended, so no"
            f" monitor will read an ack for {ns.alert_id}; its alerts escalate no more",
            file=sys.stderr,
        )
        return 2
    if known.get("state") not in ("pending", "firing"):
        print(
            f"warning: alert {ns.alert_id} is {known.get('state')}; recording the ack anyway",
            file=sys.stderr,
        )
    out.mkdir(parents=True, exist_ok=True)
    rec = {"alert_id": ns.alert_id, "time_s": time.time(), "by": ns.by or _user()}
    with (out / ACKS_FILE).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, sort_keys=True) + "\n")
    print(f"acknowledged {ns.alert_id} (recorded in {out / ACKS_FILE})")
    return 0


def _unknown_alert(
    alert_id: str, out: Path, states: dict[str, dict[str, Any]], most: int = 20
) -> str:
    """Why ``alert_id`` cannot be acknowledged, with the ids that can (active ones first)."""
    path = out / ALERTS_FILE
    if not path.exists():
        return f"no alert {alert_id!r}: {path} does not exist (no run has recorded alerts there)"
    if not states:
        return f"no alert {alert_id!r}: the latest run in {path} has recorded no alerts"
    ids = sorted(states, key=lambda a: (states[a].get("state") not in ("pending", "firing"), a))
    shown = ", ".join(f"{a} ({states[a].get('state', '?')})" for a in ids[:most])
    more = f", and {len(ids) - most} more (gpu-engine alerts list --all)" if len(ids) > most else ""
    return f"no alert {alert_id!r} in the latest run in {path}; known: {shown}{more}"


def cmd_list(ns: argparse.Namespace) -> int:
    out = Path(ns.out)
    if not out.is_dir():  # else a mistyped --out reads as "no active alerts"
        what = "is not a folder" if out.exists() else "does not exist"
        print(f"gpu-engine alerts list: --out {out} {what}", file=sys.stderr)
        return 2
    log = _load_states(out, "list")
    if log is None:
        return 2
    states, ended = log
    rows = [r for r in states.values() if ns.all or r.get("state") in ("pending", "firing")]
    rows.sort(
        key=lambda r: (
            r.get("severity") != "critical",
            r.get("severity") != "warning",
            r["alert_id"],
        )
    )
    if ns.json:
        for r in rows:
            print(json.dumps(r, sort_keys=True))
        return 0
    if ended:
        print(f"the run recorded in {out / ALERTS_FILE} has ended: its alerts as it left them")
    if not rows:
        print("no active alerts" if not ns.all else "no alerts")
        return 0
    for r in rows:
        flags = ("acked " if r.get("acknowledged") else "") + (
            "inhibited " if r.get("inhibited") else ""
        )
        summary = (r.get("annotations") or {}).get("summary", "")
        state, severity = r.get("state", ""), r.get("severity", "")
        print(f"{r['alert_id']:<40} {state:<9} {severity:<8} {flags}{summary}")
    return 0


def cmd_check(ns: argparse.Namespace) -> int:
    try:
        cfg = load_monitor_config(ns.path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{ns.path}: {len(cfg.rules)} rule(s), {len(cfg.channels)} channel(s) OK")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "cli"
