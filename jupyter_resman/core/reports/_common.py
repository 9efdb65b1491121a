"""What every report shares: the kernels the server knows, windows and limits."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import (
    RequestError,
)

if TYPE_CHECKING:

    pass


#: Monitor samples of a kernel shown by default: the last five minutes...
SAMPLE_WINDOW_S = 300.0
#: ...in at most this many points per kernel (a sidebar sparkline needs no
#: more, and serializing thousands of points would dominate the request).
MAX_POINTS = 150
#: Entries of processes that exited are dropped from the live feed this often.
PRUNE_EVERY_S = 60.0
#: The cache's hit/miss history covers this much by default.
HISTORY_S = 86400.0
#: Fields a kernel's sample carries in the metrics report (the rest stays in the feed).
SAMPLE_FIELDS = ("t", "rss", "cpu_percent")

_CLEAR_FIELDS = ("all", "keys", "namespace", "older_than", "tags")

log = logging.getLogger("jupyter_resman.server")




@dataclasses.dataclass(frozen=True)
class KernelInfo:
    """What the Jupyter server knows about one kernel (``pid`` is ``None`` when remote)."""

    kernel_id: str
    name: str | None = None
    pid: int | None = None
    path: str | None = None
    execution_state: str | None = None

    @classmethod
    def coerce(cls, value: KernelInfo | Mapping[str, Any]) -> KernelInfo:
        """A :class:`KernelInfo` from itself or a mapping (``kernel_id`` or ``id``)."""
        if isinstance(value, KernelInfo):
            return value
        pid = value.get("pid")
        return cls(
            kernel_id=str(value.get("kernel_id", value.get("id"))),
            name=value.get("name"), pid=int(pid) if pid else None, path=value.get("path"),
            execution_state=value.get("execution_state"),
        )


def _since(value: object, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]  # anything else is rejected below
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise RequestError(f"{name}={value!r} is not a time; use seconds since the epoch, "
                           f"e.g. {name}={int(time.time()) - 3600}")
    return number
