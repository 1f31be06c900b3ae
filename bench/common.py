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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the scripts import the package; this module need not
    from flask_server_status.buffer import Buffer

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


# -- holding the buffer's threads -------------------------------------------------------
# The benchmarks drain and flush themselves, at known points, so the buffer's
# drain thread must never start. The buffer has no public switch for that
# (yet), so this is the one place in bench/ that reaches into it.


class _NoThread:
    """Stands in for the drain thread, so the buffer never starts one."""

    def join(self, timeout: float | None = None) -> None:
        return None


def hold_drain_thread(buffer: Buffer) -> None:
    """Keep ``buffer`` from starting its drain thread; undo with :func:`release_drain_thread`."""
    buffer._thread = _NoThread()  # type: ignore[assignment]  # noqa: SLF001 - no public switch


def release_drain_thread(buffer: Buffer) -> None:
    """Let ``buffer`` start (or, in :meth:`Buffer.stop`, skip) its drain thread again."""
    buffer._thread = None  # noqa: SLF001 - no public switch


def buffered_keys(buffer: Buffer) -> int:
    """Distinct (rule, minute, status) keys drained and waiting for a flush."""
    return len(buffer._counts)  # noqa: SLF001 - no public count of keys
