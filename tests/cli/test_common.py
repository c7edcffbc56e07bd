"""What every command shares: tables print their cells as data, not as markup."""

from __future__ import annotations

import pytest

from session_db.cli.common import Col, duration, print_table, share, shorten, shorten_middle


def test_a_table_prints_square_brackets_in_cells_as_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_table(None, ["text"], [["[thinking] see [the docs](https://x.test) [bold]x[/bold]"]])
    out = capsys.readouterr().out
    assert "[thinking] see [the docs](https://x.test) [bold]x[/bold]" in out


def test_shorten_cuts_with_an_ellipsis_only_when_needed() -> None:
    assert shorten("Full-text search", 20) == "Full-text search"
    assert shorten("Full-text search", 10) == "Full-text…"
    assert shorten(None, 5) == ""


def test_shorten_middle_keeps_the_start_and_the_end() -> None:
    slug = "2026-02-14_search-feature_k2m9qx"
    short = shorten_middle(slug, 16)
    head, tail = short.split("…")
    assert len(short) == 16 and slug.startswith(head) and slug.endswith(tail) and tail
    assert shorten_middle(slug, len(slug)) == slug


def test_share_gives_each_its_least_then_the_rest_in_order() -> None:
    assert share(30, [(5, 20), (5, 20)]) == [20, 10]
    assert share(8, [(5, 20), (5, 20)]) == [4, 4]  # too little room: the widest give way
    assert share(100, [(5, 20), (5, 6)]) == [20, 6]  # never wider than wanted


def test_duration_reads_as_people_say_it() -> None:
    assert [duration(ms) for ms in (None, 840, 2350, 245_000, 7_800_000)] == [
        "",
        "840 ms",
        "2.4 s",
        "4 min 05 s",
        "2 h 10 min",
    ]


def test_fixed_columns_stay_whole_and_the_others_give_way(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    print_table(
        None,
        [Col("Event", no_wrap=True, shrink=False), Col("Summary", no_wrap=True)],
        [["PostToolUseFailure", "a summary much longer than forty columns of a terminal"]],
        compact=True,
    )
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 40 for line in lines) and len(lines) == 3
    assert lines[2].startswith("PostToolUseFailure  a summary") and lines[2].endswith("…")


def test_an_empty_table_prints_its_empty_line(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(None, [Col("A", no_wrap=True)], [], empty="Nothing here.")
    assert capsys.readouterr().out == "Nothing here.\n"
