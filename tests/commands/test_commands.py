"""The shared parser and handlers, called the way the magic calls them."""

import pytest

from jupyter_resman.commands import UI, HelpRequested, UsageError, build_parser, run
from jupyter_resman.commands.cache import Declined, NothingToClear


def test_parser_raises_instead_of_exiting():
    parser = build_parser(prog="%resman")
    with pytest.raises(UsageError) as info:
        parser.parse_args(["cache", "clear", "--bogus"])
    assert info.value.usage.startswith("usage: %resman cache clear")
    with pytest.raises(HelpRequested, match="usage: %resman"):
        parser.parse_args(["--help"])


def test_clear_asks_the_ui_and_respects_no(session):
    session.cache.set("a", 1, namespace="x")
    asked = []

    def no(question):
        asked.append(question)
        return False

    with pytest.raises(Declined):
        run(["cache", "clear", "--namespace", "x"], session, UI(confirm=no))
    assert len(asked) == 1 and asked[0].startswith("Remove 1 entry (")
    assert session.cache.keys("x") == ["a"]
    out = run(["cache", "clear", "--namespace", "x"], session, UI(confirm=lambda q: True))
    assert "Removed 1 entry" in out.to_text()
    assert session.cache.keys("x") == []


def test_clear_without_filter_is_refused(session):
    with pytest.raises(NothingToClear):
        run(["cache", "clear"], session)


def test_outputs_render_as_text_and_html(session):
    session.cache.set("<b>key</b>", 1)
    out = run(["cache", "list"], session)
    assert "<b>key</b>" in out.to_text()
    html = out._repr_html_()
    assert "&lt;b&gt;key&lt;/b&gt;" in html and "<table" in html
