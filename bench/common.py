"""Helpers shared by the benchmark scripts: tables, medians, machine facts, docs.

Each script prints its table and, outside ``--smoke``, replaces its own
section of ``docs/benchmarks.md`` (between ``<!-- bench:NAME -->`` markers),
so the figures there are always the ones a script printed, never typed.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DOCS = ROOT / "docs" / "benchmarks.md"
#: The benchmark's own virtualenv, with the peers; made by ``bench/setup-env.sh``.
VENV_PYTHON = BENCH / ".env" / "bin" / "python"

_HEADER = """# Benchmarks

Written by the scripts in `bench/` (see `bench/README.md`); every figure below
was printed by the command shown above its table. Rerun a script to replace
its section. The machine is shared and noisy: figures are medians of rounds.
"""


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; it reads fine in a terminal too."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """One paragraph on where and with what a figure was measured."""
    return (
        f"Machine: {os.cpu_count()} CPU ({cpu_model()}), {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, Flask {version('flask')}, "
        f"Werkzeug {version('werkzeug')}, SQLAlchemy {version('sqlalchemy')}; "
        f"run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}."
    )


def command(env: Sequence[str] = ()) -> str:
    """The command line that ran this script, relative to the repository.

    :param env: names of environment variables the script read; those set are
        shown in front of the command.
    """
    script = Path(sys.argv[0]).resolve()
    try:
        shown = str(script.relative_to(ROOT))
    except ValueError:
        shown = str(script)
    prefix = "".join(f"{key}={shlex.quote(os.environ[key])} " for key in env if os.environ.get(key))
    return prefix + "python " + " ".join([shown, *(shlex.quote(a) for a in sys.argv[1:])])


def write_section(name: str, title: str, body: str, env: Sequence[str] = ()) -> None:
    """Replace (or append) the ``name`` section of ``docs/benchmarks.md``.

    :param env: environment variables the script read, shown with the command.
    """
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    section = (
        f"{start}\n## {title}\n\n{machine()}\n\nCommand: `{command(env)}`\n\n{body.strip()}\n{end}"
    )
    text = DOCS.read_text() if DOCS.exists() else _HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)
    print(f"wrote the {name!r} section of {DOCS.relative_to(ROOT)}")


def percent(ratio: float) -> str:
    """``1.034`` -> ``+3.4 %``."""
    return f"{(ratio - 1) * 100:+.1f} %"
