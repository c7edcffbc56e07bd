"""The README's usage examples run as written, in order, on both engines."""

import ast
import re

from sqlalchemy.engine import URL
from support import REPO

README = REPO / "README.md"


def usage_blocks() -> list[str]:
    """The ```python blocks of the README's "Use" section."""
    text = README.read_text()
    section = text[text.index("## Use\n") : text.index("## Schema\n")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_the_usage_section_has_examples() -> None:
    assert len(usage_blocks()) >= 6


async def test_readme_usage_examples_run(default_database: URL) -> None:
    namespace: dict[str, object] = {}
    for number, block in enumerate(usage_blocks(), start=1):
        code = compile(
            block, f"README.md python block {number}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        )
        result = eval(code, namespace)
        if result is not None:
            await result
    rollup = namespace["rollup"]
    assert (rollup.session_count, rollup.total_tokens) == (2, 5000)  # type: ignore[attr-defined]
    search, report = namespace["search"], namespace["report"]
    assert (search.phase, search.checkpoints_completed) == ("build", 1)  # type: ignore[attr-defined]
    assert report.counts["unchanged"] == 1  # type: ignore[attr-defined]  # the pool had synced
