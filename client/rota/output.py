"""How ``rota`` prints: tables and colours on a terminal, plain aligned text when piped, JSON on request.

Results go to stdout; notes, warnings, progress and errors go to stderr, so ``rota list | grep``
and ``rota submit … --json | jq`` see only the result. Colours follow the usual conventions:
``NO_COLOR`` turns them off, ``FORCE_COLOR`` forces them (both handled by rich).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

STATUS_STYLES = {
    "waiting": "yellow",
    "suspended": "yellow",
    "held": "magenta",
    "starting": "cyan",
    "running": "bold green",
    "suspending": "yellow",
    "stopping": "yellow",
    "succeeded": "green",
    "failed": "bold red",
    "stopped": "dim",
    "canceled": "dim",
    # nodes
    "ready": "green",
    "not_ready": "red",
    "notready": "red",
    "disabled": "dim",
    "draining": "yellow",
    # ranks
    "pending": "yellow",
    "killed": "dim",
}

Cell = Any  # str, int, None, or a rich Text


def styled(value: Any, style: str | None = None) -> Text:
    """A table cell with a style (kept only on a terminal)."""
    return Text("" if value is None else str(value), style=style or "")


def status_cell(status: str | None) -> Text:
    """A status word in its colour."""
    return styled(status or "-", STATUS_STYLES.get((status or "").lower()))


def when(value: str | None) -> str:
    """An ISO timestamp from the API as local time, ``YYYY-MM-DD HH:MM:SS``; ``-`` for none."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def when_short(value: str | None) -> str:
    """Like :func:`when`, without the year when it is this year and without seconds (for lists)."""
    full = when(value)
    if len(full) != 19:
        return full
    this_year = datetime.now().strftime("%Y")
    return full[5:16] if full.startswith(this_year) else full[:16]


def duration(seconds: float | None) -> str:
    """``3725`` → ``1h 02m 05s``."""
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def size(nbytes: int | None) -> str:
    """``274877906944`` → ``256 GiB``."""
    if not nbytes:
        return "-"
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if value >= 10 or unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.0f} TiB"


class Output:
    """The one place that writes to the terminal. ``json_mode`` switches every result to JSON."""

    def __init__(self, *, json_mode: bool = False) -> None:
        self.json_mode = json_mode
        # No file given: rich writes to whatever sys.stdout/sys.stderr are at print time.
        self.out = Console(highlight=False, soft_wrap=False)
        self.err = Console(stderr=True, highlight=False)

    @property
    def terminal(self) -> bool:
        """True when stdout is a terminal (tables with boxes and colours)."""
        return self.out.is_terminal

    # ---- results (stdout) -----------------------------------------------------------------

    def json(self, data: Any) -> None:
        """One JSON document on stdout."""
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def json_line(self, data: Any) -> None:
        """One JSON object per line (for streams such as ``logs --json``)."""
        sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def line(self, text: str | Text = "", style: str | None = None) -> None:
        """A line of result text; styled on a terminal, plain otherwise."""
        if self.terminal:
            self.out.print(text, style=style or "", soft_wrap=True, markup=False)
        else:
            sys.stdout.write((text.plain if isinstance(text, Text) else str(text)) + "\n")

    def raw(self, text: str) -> None:
        """Text exactly as given (log data), flushed at once."""
        sys.stdout.write(text)
        sys.stdout.flush()

    def table(
        self,
        headers: Sequence[str],
        rows: Sequence[Sequence[Cell]],
        *,
        title: str | None = None,
        right: Sequence[str] = (),
        clip: Sequence[str] = (),
        empty: str = "Nothing to show.",
    ) -> None:
        """Aligned columns: a rich table on a terminal, plain space-aligned text when piped.

        Columns named in ``clip`` are cut to one line with an ellipsis on a terminal (never when piped)."""
        if not rows:
            self.note(empty)
            return
        if self.terminal:
            table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False, show_edge=False)
            # Short columns never wrap; a clipped column gives way (one line, ellipsis) when space is short.
            for header in headers:
                justify: JustifyMethod = "right" if header in right else "left"
                table.add_column(header, justify=justify, no_wrap=bool(clip) and header not in clip)
            clipped = {i for i, header in enumerate(headers) if header in clip}
            for row in rows:
                cells = [cell if isinstance(cell, Text) else styled(cell) for cell in row]
                for i in clipped:
                    cells[i] = cells[i].copy()
                    cells[i].no_wrap, cells[i].overflow = True, "ellipsis"
                table.add_row(*cells)
            self.out.print(table)
            return
        plain: list[list[str]] = [
            [cell.plain if isinstance(cell, Text) else ("" if cell is None else str(cell)) for cell in row]
            for row in rows
        ]
        widths = [max(cell_len(h), *(cell_len(r[i]) for r in plain)) for i, h in enumerate(headers)]
        lines = []
        if title:
            lines.append(title)
        for texts in [list(headers), *plain]:
            parts = []
            for i, text in enumerate(texts):
                pad = " " * (widths[i] - cell_len(text))  # display width: ★ and CJK names align too
                parts.append(pad + text if headers[i] in right else text + pad)
            lines.append("  ".join(parts).rstrip())
        sys.stdout.write("\n".join(lines) + "\n")

    def fields(self, pairs: Sequence[tuple[str, Cell]]) -> None:
        """``Key:  value`` lines, keys aligned."""
        width = max((len(k) for k, _ in pairs), default=0) + 1
        for key, value in pairs:
            label = f"{key}:".ljust(width + 1)
            if self.terminal:
                text = Text(label, style="bold")
                text.append_text(value if isinstance(value, Text) else Text("" if value is None else str(value)))
                self.out.print(text, soft_wrap=True, markup=False)
            else:
                shown = value.plain if isinstance(value, Text) else ("" if value is None else str(value))
                sys.stdout.write(f"{label}{shown}".rstrip() + "\n")

    # ---- side channel (stderr) -------------------------------------------------------------

    def note(self, text: str | Text) -> None:
        """Something worth knowing that is not the result (stderr)."""
        self.err.print(text, style="dim" if self.err.is_terminal else "", soft_wrap=True, markup=False)

    def hint(self, text: str) -> None:
        """A next step to take (stderr)."""
        self.err.print(text, style="cyan" if self.err.is_terminal else "", soft_wrap=True, markup=False)

    def warn(self, text: str) -> None:
        """A warning on stderr."""
        self.err.print(f"Warning: {text}", style="yellow", soft_wrap=True, markup=False)

    def error(self, text: str) -> None:
        """An error message on stderr (the exit code says the rest)."""
        self.err.print(f"Error: {text}", style="bold red", soft_wrap=True, markup=False)

    @contextlib.contextmanager
    def progress(self, text: str) -> Iterator[Any]:
        """A spinner on stderr while something slow runs (only on a terminal). Yields an object
        with ``update(text)``."""
        if not self.err.is_terminal:
            yield _NoStatus()
            return
        with self.err.status(text, spinner="dots") as status:
            yield status


class _NoStatus:
    def update(self, *args: Any, **kwargs: Any) -> None:
        """Nothing to update when there is no spinner."""
