"""What every command shares: tables print their cells as data, not as markup."""

from __future__ import annotations

import pytest

from session_db.cli.common import print_table


def test_a_table_prints_square_brackets_in_cells_as_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    print_table(None, ["text"], [["[thinking] see [the docs](https://x.test) [bold]x[/bold]"]])
    out = capsys.readouterr().out
    assert "[thinking] see [the docs](https://x.test) [bold]x[/bold]" in out
