"""The ``resman`` command: the shared commands, rendered as text for a terminal.

Exit codes: 0 done, 1 a jupyter_resman error (message on stderr, no
traceback), 2 bad arguments (usage on stderr), 130 interrupted.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .commands import UI, HelpRequested, UsageError, build_parser, run
from .core.errors import ResmanError
from .core.session import get_session


def _ask(question: str) -> bool:
    try:
        answer = input(f"{question} [y/N] ")
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(prog="resman")
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    # Off a terminal nobody can answer: refuse destructive actions without --yes.
    ui = UI(confirm=_ask if interactive else _refuse, interactive=interactive)
    try:
        args = parser.parse_args(argv)
        session = get_session()
        output = args.handler(session, args, ui)
    except HelpRequested as help_text:
        print(str(help_text).rstrip())
        return 0
    except UsageError as exc:
        print(exc.usage, file=sys.stderr)
        print(f"resman: error: {exc}", file=sys.stderr)
        return 2
    except ResmanError as exc:
        print(f"resman: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("resman: interrupted", file=sys.stderr)
        return 130
    print(output.to_json() if args.json else output.to_text())
    return 0


def _refuse(question: str) -> bool:
    print(f"{question} Not on a terminal: pass --yes to confirm.", file=sys.stderr)
    return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
