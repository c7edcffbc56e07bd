"""Run the session_db benchmark suite and print one table: each figure beside its baseline.

Every figure is measured against a baseline taken in the same run (interleaved where
the benchmark allows), because the machines this runs on are shared and noisy: the
ratio is what to read, not the absolute numbers. Each figure gets a fresh migrated
database: a temp SQLite file, or with `--url postgresql+asyncpg://...` a database
`session_db_bench_<random>` made on that server and dropped afterwards.

    python bench/run.py                        # SQLite, full sizes (1M events: slow)
    python bench/run.py --quick                # every size divided by 10
    python bench/run.py --url postgresql+asyncpg://postgres@127.0.0.1:5432/postgres
    python bench/run.py --only delivery --scale 0.01   # one benchmark, tiny sizes
    python bench/run.py --json                 # the rows as JSON

Benchmarks (`--only` takes these names): delivery, create_log, hook, import (when
bench/bench_import.py exists), project_open, state_save, tree, usage, web (the dashboard's
pages at 1M events; needs the web extra).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from _common import dialect_name, fresh_database  # noqa: E402

BENCHMARKS = (
    "delivery",
    "create_log",
    "hook",
    "import",
    "project_open",
    "state_save",
    "tree",
    "web",
    "usage",
)
# What a module's rows are compared with and in which unit, when it does not say.
DEFAULTS: dict[str, dict[str, str]] = {
    "import": {"unit": "lines/s", "compared_with": "json.loads of the same lines"},
}


def _module_name(name: str) -> str:
    name = name.removeprefix("bench_").removesuffix(".py")
    if name not in BENCHMARKS:
        raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    return name


def _call(module: Any, name: str, url: str | None, quick: bool, scale: float | None) -> list:
    """Call a module's run() with the arguments its signature takes."""
    parameters = inspect.signature(module.run).parameters
    kwargs: dict[str, Any] = {}
    if "scale" in parameters and scale is not None:
        kwargs["scale"] = scale
    if "quick" in parameters:
        kwargs["quick"] = quick
    elif quick and "copies" in parameters:  # bench_import.run(url, copies=, rounds=)
        kwargs["copies"] = 1
    if name == "import":  # it uses the database it is given: give it a fresh one
        with fresh_database(url) as fresh:
            return module.run(fresh, **kwargs)
    return module.run(url, **kwargs)


def _normalise(name: str, result: dict[str, Any]) -> dict[str, Any]:
    out = {"benchmark": name, **DEFAULTS.get(name, {}), **result}
    target = out.get("target", "")
    if isinstance(target, int | float):  # a bare number is the least ratio wanted
        out["target"] = f"≥ {target:g}x"
    value, baseline = out.get("value"), out.get("baseline")
    if out.get("ratio") is None and value is not None and baseline:
        out["ratio"] = value / baseline
    out.setdefault("unit", "")
    out.setdefault("compared_with", "")
    out.setdefault("note", "")
    limit = out.get("limit")  # an absolute bound in the row's unit (usage: "≤ 1 s")
    if limit is not None and value is not None:
        out["verdict"] = "ok" if value <= limit else "MISSED"
    else:
        out["verdict"] = verdict(out.get("ratio"), out["target"])
    return out


def verdict(ratio: float | None, target: str) -> str:
    """'ok', 'MISSED' or '' (no target) for a ratio against a target like '≥ 0.5x'."""
    target = (target or "").strip().rstrip("x").strip()
    if not target or ratio is None or (isinstance(ratio, float) and math.isnan(ratio)):
        return ""
    for sign, check in (
        ("≥", ratio.__ge__),
        (">=", ratio.__ge__),
        ("≤", ratio.__le__),
        ("<=", ratio.__le__),
    ):
        if target.startswith(sign):
            return "ok" if check(float(target[len(sign) :])) else "MISSED"
    return ""


def _number(value: Any, unit: str) -> str:
    if value is None:
        return "—"
    if not isinstance(value, int | float):
        return str(value)
    if unit.endswith("/s") or unit == "MiB":
        return f"{value:,.0f} {unit}"
    if unit == "ms":
        return f"{value:,.1f} ms"
    if unit == "s":
        return f"{value:,.3f} s"
    return f"{value:,.4g} {unit}".strip()


def cells(result: dict[str, Any]) -> list[str]:
    unit = result.get("unit", "")
    baseline = _number(result.get("baseline"), unit)
    if result.get("compared_with"):
        baseline += f" ({result['compared_with']})"
    ratio = result.get("ratio")
    ratio_text = "—"
    if isinstance(ratio, int | float) and ratio == ratio:
        ratio_text = f"{ratio:.{1 if ratio >= 10 else 2 if ratio >= 0.1 else 3}f}x"
    return [
        str(result["figure"]),
        _number(result.get("value"), unit),
        baseline,
        ratio_text,
        result.get("target") or "—",
        result.get("verdict") or "",
    ]


HEADERS = ["Figure", "Value", "Baseline (same run)", "Ratio", "Target", ""]


def print_plain(results: list[dict[str, Any]]) -> None:
    """A Markdown table (paste-able), then the notes."""
    print("| " + " | ".join(HEADERS) + " |")
    print("|" + "|".join("---" for _ in HEADERS) + "|")
    for result in results:
        print("| " + " | ".join(cells(result)) + " |")
    notes = [(r["figure"], r["note"]) for r in results if r.get("note")]
    if notes:
        print()
        for figure, note in notes:
            print(f"- {figure}: {note}")


def print_rich(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*HEADERS, show_lines=False)
    for result in results:
        row = cells(result)
        style = {"ok": "green", "MISSED": "bold red"}.get(row[-1], "")
        row[-1] = f"[{style}]{row[-1]}[/]" if style else row[-1]
        table.add_row(*row)
    console = Console()
    console.print(table)
    for result in results:
        if result.get("note"):
            console.print(f"[dim]- {result['figure']}: {result['note']}[/]", highlight=False)


def describe_checkout() -> str:
    """The commit measured, and whether the library's sources differ from it."""
    try:
        head = subprocess.run(
            ["git", "-C", str(BENCH_DIR), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(BENCH_DIR.parent),
                "status",
                "--porcelain",
                "--",
                "src",
                "migrations",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return head + (" + uncommitted changes under src/" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog=(__doc__ or "").split("\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--url",
        help="a PostgreSQL server URL to measure on (fresh databases are made there); "
        "default: SQLite temp files",
    )
    parser.add_argument("--quick", action="store_true", help="every size divided by 10")
    parser.add_argument(
        "--scale", type=float, help="multiply every size by this instead (e.g. 0.01)"
    )
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this benchmark (repeatable)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--plain", action="store_true", help="a plain Markdown table")
    args = parser.parse_args()

    names = [_module_name(n) for n in args.only] if args.only else list(BENCHMARKS)
    header = (
        f"session_db benchmarks on {describe_checkout()}; database {dialect_name(args.url)}; "
        f"{'quick (sizes / 10)' if args.quick and args.scale is None else ''}"
        f"{f'scale {args.scale:g}' if args.scale is not None else ''}"
        f"{'' if args.quick or args.scale is not None else 'full sizes'}; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(header, file=sys.stderr if args.json else sys.stdout, flush=True)
    results: list[dict[str, Any]] = []
    failed = False
    for name in names:
        if not (BENCH_DIR / f"bench_{name}.py").exists():
            print(f"[{name}] skipped: bench/bench_{name}.py does not exist", file=sys.stderr)
            continue
        started = time.perf_counter()
        print(f"[{name}] running...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"bench_{name}")
            rows = _call(module, name, args.url, args.quick, args.scale)
        except Exception as error:
            failed = True
            traceback.print_exc()
            rows = [
                {
                    "figure": f"{name}: failed",
                    "value": None,
                    "baseline": None,
                    "ratio": None,
                    "target": "",
                    "note": f"{type(error).__name__}: {error}",
                }
            ]
        results.extend(_normalise(name, result) for result in rows)
        print(f"[{name}] done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2, default=str, ensure_ascii=False))
    elif args.plain or not sys.stdout.isatty():
        print_plain(results)
    else:
        print_rich(results)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
