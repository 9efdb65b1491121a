"""``resman monitor [start|stop|show]`` and ``resman limits``: what this process consumes.

In a kernel (``%resman monitor start``) the monitor keeps sampling in the
background and publishes for the Jupyter server; from the command line
``show`` is a one-off look at the machine and the ``resman`` process.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..core.settings import format_size
from .output import Output


def register(sub: Any) -> None:
    monitor = sub.add_parser("monitor", help="resource monitor: start, stop, show")
    monitor.set_defaults(handler=monitor_show)
    actions = monitor.add_subparsers(title="actions", metavar="ACTION", parser_class=type(monitor))
    start = actions.add_parser("start", help="sample in the background (and publish)")
    start.add_argument("--interval", type=_positive, default=1.0, metavar="S",
                       help="seconds between samples (default 1)")
    start.set_defaults(handler=monitor_start)
    actions.add_parser("stop", help="stop sampling").set_defaults(handler=monitor_stop)
    actions.add_parser("show", help="current usage and peaks (default)").set_defaults(
        handler=monitor_show)

    limits = sub.add_parser("limits", help="show or set resource limits")
    limits.add_argument("--memory", metavar="SIZE", help="memory of this process tree, e.g. 8GB "
                        "('none' removes it)")
    limits.add_argument("--memory-percent", metavar="PCT", help="memory as %% of the machine")
    limits.add_argument("--cpu-percent", metavar="PCT", help="CPU as %% of the available cores")
    limits.add_argument("--disk-free", metavar="SIZE", help="minimum free space on the home's disk")
    limits.add_argument("--warn-at", type=float, metavar="FRACTION",
                        help="warn at this fraction of a limit (default 0.8)")
    limits.add_argument("--clear", action="store_true", help="remove every limit")
    limits.set_defaults(handler=limits_command)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("the interval must be positive, e.g. --interval 1")
    return value


def monitor_start(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    session.monitor.start(interval=args.interval)
    return Output(message=f"Monitor sampling every {args.interval:g} s (and publishing for the "
                          "Jupyter server); stop it with `monitor stop`.")


def monitor_stop(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    was = session.monitor.running
    session.monitor.stop()
    return Output(message="Monitor stopped." if was else "The monitor was not running.")


def monitor_show(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    monitor = session.monitor
    sample = monitor.last() if monitor.running and monitor.last() else monitor.sample()
    d = sample.to_dict()
    fields = {
        "process memory": f"{format_size(d['rss'])} ({d['rss_percent']:.1f}% of "
                          f"{format_size(d['sys_mem_total'])}) in {d['children'] + 1} process(es)",
        "process CPU": f"{d['cpu_percent']:.0f}% of one core, {d['threads']} threads",
        "system memory": f"{format_size(d['sys_mem_used'])} used, "
                         f"{format_size(d['sys_mem_available'])} available ({d['sys_mem_percent']:.0f}%)",
        "system CPU": f"{d['sys_cpu_percent']:.0f}% of {d['cpu_count']:g} cores",
        "disk (home)": f"{format_size(d['disk_free'])} free of {format_size(d['disk_total'])}",
    }
    if d.get("container_mem_limit"):
        fields["container"] = (f"memory limit {format_size(d['container_mem_limit'])}, "
                               f"{d.get('container_cpus') or 'no'} CPU limit")
    gpus = sorted({k.split("_")[0] for k in d if k.startswith("gpu") and k.endswith("_util")})
    for gpu in gpus:
        fields[gpu] = (f"{d[gpu + '_util']:.0f}% busy, {format_size(d[gpu + '_mem_used'])} of "
                       f"{format_size(d[gpu + '_mem_total'])}")
    if monitor.running:
        peak = monitor.peak()
        fields["peak memory"] = format_size(peak.get("rss", d["rss"]))
        fields["sampling"] = f"every {monitor.interval:g} s"
    else:
        fields["sampling"] = "off (start with `monitor start`)"
    return Output(title="Resources", fields=fields, data=d)


def limits_command(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    monitor = session.monitor
    if args.clear:
        monitor.clear_limits()
    changes = {name: _none(value) for name, value in (
        ("memory", args.memory), ("memory_percent", _number(args.memory_percent)),
        ("cpu_percent", _number(args.cpu_percent)), ("disk_free", args.disk_free))
        if value is not None}
    if changes or args.warn_at is not None:
        monitor.set_limits(**changes, warn_at=args.warn_at)
    info = monitor.limits_info()
    return Output(title=f"Limits (status: {info.get('status', 'ok')})", fields=_limit_fields(info),
                  data=info)


def _limit_fields(info: dict[str, Any]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in (info.get("limits") or {}).items():
        if value is None:
            continue
        shown = format_size(value) if name in ("memory", "disk_free") else f"{value:g}%"
        fields[name] = shown
    if not fields:
        fields["limits"] = "none set"
    fields["warn at"] = f"{info.get('warn_at', 0.8):.0%} of a limit"
    for name, check in (info.get("checks") or {}).items():
        fields[f"{name} now"] = f"{check['text']} ({check['percent_of_limit']:.0f}% of the limit, " \
                                f"{check['level']})"
    return fields


def _none(value: Any) -> Any:
    return None if isinstance(value, str) and value.strip().lower() in ("none", "off") else value


def _number(text: str | None) -> Any:
    if text is None:
        return None
    if text.strip().lower() in ("none", "off"):
        return "none"
    try:
        return float(text)
    except ValueError:
        return text  # the core raises a ConfigError naming the limit
