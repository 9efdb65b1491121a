"""The confirmation step in front of every destructive button of a panel.

Clearing a cache or deleting a checkpoint cannot be undone, and a button is
easy to hit by accident. A :class:`ConfirmBar` stays hidden until a panel
asks a question ("Remove 12 entries (3.4 MB) in namespace 'emb'?"); only
*Confirm* runs the action, and its result (or its error, as a readable
message) goes to the panel's status line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import ipywidgets as widgets

from ..core.errors import ResmanError
from ._display import close_tree, escape

__all__ = ["ConfirmBar"]

log = logging.getLogger("jupyter_resman.widgets")

Action = Callable[[], str]


class ConfirmBar(widgets.HBox):
    """A question with *Confirm* and *Cancel*; runs the pending action on *Confirm*.

    ``report(message, ok)`` receives what the action returned (a sentence for
    the panel's status line) or, if it raised, the error's message.
    """

    def __init__(self, report: Callable[[str, bool], None]) -> None:
        self.question = widgets.HTML()
        self.confirm_button = widgets.Button(description="Confirm", button_style="danger",
                                             icon="trash")
        self.cancel_button = widgets.Button(description="Cancel")
        super().__init__([self.question, self.confirm_button, self.cancel_button],
                         layout=widgets.Layout(display="none", align_items="center"))
        self.add_class("resman-confirm")
        self._report = report
        self._action: Action | None = None
        self._text = ""
        self.confirm_button.on_click(self._on_confirm)
        self.cancel_button.on_click(self._on_cancel)

    @property
    def pending(self) -> str | None:
        """The question waiting for an answer (``None`` when nothing is pending)."""
        return self._text if self._action is not None else None

    def ask(self, question: str, action: Action) -> None:
        """Show ``question``; ``action`` runs only if *Confirm* is pressed."""
        self._text = question
        self._action = action
        self.question.value = f"<b>{escape(question)}</b>"
        self.layout.display = "flex"

    def cancel(self) -> None:
        """Forget the pending action and hide."""
        self._action = None
        self.layout.display = "none"

    def _on_confirm(self, _button: widgets.Button | None = None) -> None:
        action, self._action = self._action, None
        self.layout.display = "none"
        if action is None:
            return
        try:
            message = action()
        except (ResmanError, OSError, ValueError, KeyError) as exc:
            # A busy or damaged store, a name that vanished meanwhile: say it, keep the panel.
            self._report(f"{type(exc).__name__}: {exc}", False)
            return
        except Exception as exc:  # anything else is a bug, but the dashboard must survive it
            log.exception("a confirmed panel action failed")
            self._report(f"unexpected {type(exc).__name__}: {exc}", False)
            return
        self._report(message, True)

    def _on_cancel(self, _button: widgets.Button | None = None) -> None:
        self.cancel()
        self._report("Cancelled; nothing was changed.", True)

    def close(self) -> None:
        """Disconnect the buttons and close every widget of the bar."""
        self._action = None
        self.confirm_button.on_click(self._on_confirm, remove=True)
        self.cancel_button.on_click(self._on_cancel, remove=True)
        for child in (self.question, self.confirm_button, self.cancel_button, self.layout):
            close_tree(child)
        super().close()
