"""``resman config``: the settings in effect and where they come from."""

from __future__ import annotations

import argparse
from typing import Any

from .output import Output


def register(sub: Any) -> None:
    parser = sub.add_parser("config", help="show the settings in effect")
    parser.set_defaults(handler=show_config)


def show_config(session: Any, args: argparse.Namespace, ui: Any) -> Output:
    described = session.settings.describe()
    return Output(title="jupyter_resman settings (RESMAN_* environment variables override)",
                  fields=described, data=described)
