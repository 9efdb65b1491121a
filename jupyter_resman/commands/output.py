"""What a command returns: one value that renders as plain text or HTML.

The CLI prints :meth:`Output.to_text`; the ``%resman`` magic returns the
object itself, so a notebook shows :meth:`Output._repr_html_` and a terminal
IPython the text.
"""

from __future__ import annotations

import dataclasses
import html
import json
from typing import Any

import pandas as pd

__all__ = ["Output"]


@dataclasses.dataclass
class Output:
    """A title, optional key/value fields, an optional table and a closing message."""

    title: str | None = None
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    table: pd.DataFrame | None = None
    message: str | None = None
    data: Any = None  # machine-readable form for --json

    def to_text(self) -> str:
        parts = []
        if self.title:
            parts.append(self.title)
        if self.fields:
            width = max(len(k) for k in self.fields)
            parts.append("\n".join(f"  {k:<{width}}  {v}" for k, v in self.fields.items()))
        if self.table is not None:
            parts.append("  (none)" if self.table.empty else
                         self.table.to_string(index=False, max_colwidth=60))
        if self.message:
            parts.append(self.message)
        return "\n".join(parts)

    def to_json(self) -> str:
        if self.data is not None:
            payload = self.data
        else:
            payload = {"title": self.title, "fields": self.fields, "message": self.message,
                       "table": None if self.table is None else
                       json.loads(self.table.to_json(orient="records", date_format="iso"))}
        return json.dumps(payload, indent=2, default=str)

    def _repr_html_(self) -> str:
        parts = ['<div class="resman-output">']
        if self.title:
            parts.append(f"<strong>{html.escape(self.title)}</strong>")
        if self.fields:
            rows = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
                           f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                           for k, v in self.fields.items())
            parts.append(f"<table>{rows}</table>")
        if self.table is not None:
            parts.append("<p><em>(none)</em></p>" if self.table.empty else
                         self.table.to_html(index=False, border=0, escape=True))
        if self.message:
            parts.append(f"<p>{html.escape(self.message)}</p>")
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        return self.to_text()
