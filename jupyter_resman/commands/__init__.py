"""The commands shared by the ``resman`` CLI and the ``%resman`` magic: one parser.

Each command group lives in its own module with a ``register(subparsers)``
function; handlers take ``(session, args, ui)`` and return an
:class:`~.output.Output`. Front ends only parse, call :func:`run` and render.

>>> parser = build_parser(prog="resman")
>>> parser.parse_args(["cache", "clear", "--tag", "exp1", "--yes"]).tags
['exp1']
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import TYPE_CHECKING, Any

from ..core.errors import ResmanError
from .output import Output

if TYPE_CHECKING:
    from ..core.session import Session

__all__ = ["GROUPS", "Output", "UI", "UsageError", "build_parser", "run"]

#: Modules of this package that add sub-commands, in the order help lists them.
GROUPS = ["cache", "monitor", "checkpoints", "registry", "resources", "log", "migrate", "config"]


class UsageError(ResmanError, ValueError):
    """Bad command-line arguments; ``usage`` is the usage line to show."""

    def __init__(self, message: str, usage: str = "") -> None:
        super().__init__(message)
        self.usage = usage


class HelpRequested(ResmanError):
    """``--help`` was asked for; the text is the help to show (not an error)."""


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so a notebook never sees SystemExit.

    Every parser records itself as a default, so an error about unknown
    arguments shows the usage of the innermost command, not of the root.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(_parser=self)

    def parse_args(self, args: Any = None, namespace: Any = None) -> argparse.Namespace:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            getattr(parsed, "_parser", self).error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message, self.format_usage().strip())

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        if status:
            raise UsageError(message or "", self.format_usage().strip())
        raise HelpRequested(message or "")

    def print_help(self, file: Any = None) -> None:  # type: ignore[override]
        raise HelpRequested(self.format_help())


@dataclasses.dataclass
class UI:
    """How a handler talks back to the person: confirmation and progress output.

    ``confirm(question) -> bool`` is asked before destructive actions; the
    CLI asks on a terminal, other front ends may answer for the user.
    """

    confirm: Callable[[str], bool] = lambda question: True
    interactive: bool = False


def build_parser(prog: str = "resman") -> argparse.ArgumentParser:
    """The one parser: ``resman …`` on the command line, ``%resman …`` in IPython."""
    parser = _Parser(prog=prog, description="Manage what long notebook computations consume "
                     "and produce: cache, monitor, progress, checkpoints, registry.")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(handler=_summary)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    for name in GROUPS:
        import_module(f".{name}", __name__).register(sub)
    return parser


def run(argv: Sequence[str], session: Session, ui: UI | None = None,
        parser: argparse.ArgumentParser | None = None) -> Output:
    """Parse ``argv`` and run the command on ``session``.

    Raises :class:`UsageError` for bad arguments, :class:`HelpRequested` for
    ``--help`` and any :class:`ResmanError` the command raises.
    """
    parser = parser or build_parser()
    args = parser.parse_args(list(argv))
    return args.handler(session, args, ui or UI())


def _summary(session: Session, args: argparse.Namespace, ui: UI) -> Output:
    from .cache import stats_fields

    stats = session.cache.stats()
    return Output(title=f"jupyter_resman — home {session.home.root}",
                  fields=stats_fields(stats, session),
                  message="Commands: cache stats|list|clear, monitor start|stop|show, limits, "
                          "checkpoints list|clear, config (--help for more).",
                  data=stats.to_dict())
