"""``resman checkpoints [list [NAME] | clear NAME]``: saved states of long work."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd

from ..core.errors import CheckpointNotFoundError
from ..core.settings import format_size
from .cache import Declined
from .output import Output


def register(sub: Any) -> None:
    checkpoints = sub.add_parser("checkpoints", help="list or delete checkpoints")
    checkpoints.set_defaults(handler=checkpoints_list, name=None)
    actions = checkpoints.add_subparsers(title="actions", metavar="ACTION",
                                         parser_class=type(checkpoints))
    listing = actions.add_parser("list", help="checkpoints and their versions (default)")
    listing.add_argument("name", nargs="?", help="only this checkpoint, every version")
    listing.set_defaults(handler=checkpoints_list)
    clear = actions.add_parser("clear", help="delete every version of a checkpoint")
    clear.add_argument("name", help="the checkpoint to delete")
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    clear.set_defaults(handler=checkpoints_clear)


def checkpoints_list(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    frame = session.checkpoints.list(args.name)
    if args.name is not None and frame.empty:
        raise CheckpointNotFoundError(f"no checkpoint named {args.name!r}")
    if args.name is None and not frame.empty:
        # One row per name: the newest version, and how many there are.
        grouped = frame.groupby("name", sort=True)
        frame = grouped.tail(1).assign(versions=grouped["version"].transform("count"))
    table = pd.DataFrame({
        "name": frame["name"],
        "version": frame["version"],
        **({"versions": frame["versions"]} if "versions" in frame else {}),
        "saved": frame["time"].map(lambda t: t.tz_convert(None).strftime("%Y-%m-%d %H:%M:%S")),
        "size": frame["bytes"].map(format_size),
        "description": frame["description"].fillna(""),
    })
    title = (f"Checkpoint {args.name!r}: {len(table)} version(s)" if args.name
             else f"{len(table)} checkpoint(s) in {session.home.checkpoints_dir}")
    return Output(title=title, table=table,
                  data=frame.drop(columns=["path"], errors="ignore").to_dict(orient="records"))


def checkpoints_clear(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    versions = session.checkpoints.versions(args.name)
    if not versions:
        raise CheckpointNotFoundError(f"no checkpoint named {args.name!r}")
    if not args.yes and not ui.confirm(f"Delete checkpoint {args.name!r} "
                                       f"({len(versions)} version(s))?"):
        raise Declined("Nothing deleted.")
    removed = session.checkpoints.delete(args.name)
    return Output(message=f"Deleted checkpoint {args.name!r} ({removed} version(s)).",
                  data={"deleted": args.name, "versions": removed})
