"""Progress on long work, on stderr only: a spinner for a solve that takes more than a few seconds, a bar for sweeps.

Nothing is shown when stderr is not a terminal (piped, captured, CI) or with ``--quiet``; stdout is never touched,
so ``--json`` output stays one document. The MILP backends report no incumbent or bound while they run (OR-Tools'
``pywraplp`` and PuLP's CBC return only at the end), so a solve shows its stage and elapsed time; a sweep shows the
points done, the last point's status and the cheapest plan found so far.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

SHOW_AFTER_S = 2.0
"""A solve shorter than this shows nothing (most plans take well under a second)."""


def enabled(console: Console, quiet: bool) -> bool:
    """Whether to show progress: stderr is a terminal and ``--quiet`` was not given."""
    return console.is_terminal and not quiet


@contextmanager
def solving(console: Console, label: str, show: bool, after_s: float = SHOW_AFTER_S) -> Iterator[None]:
    """Show ``label`` with a spinner and the elapsed time once the block has run ``after_s`` seconds."""
    if not show:
        yield
        return
    bar = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
    )
    bar.add_task(label, total=None)
    timer = threading.Timer(after_s, bar.start)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        bar.stop()


class SweepProgress:
    """A bar for a sweep: points done of the total, elapsed time, last status and the cheapest plan so far."""

    def __init__(self, console: Console, total: int, show: bool) -> None:
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("sweeping"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
            transient=True,
            disable=not show,
        )
        self.task = self.bar.add_task("sweep", total=total, note="")
        self.best = math.inf

    def __enter__(self) -> SweepProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def point(self, row: Mapping[str, Any]) -> None:
        """Record one finished point (a sweep result row)."""
        cost = row.get("cost_usd_per_hour")
        if isinstance(cost, int | float) and math.isfinite(cost):
            self.best = min(self.best, float(cost))
        best = f"; cheapest ${self.best:,.2f}/h" if math.isfinite(self.best) else ""
        self.bar.update(self.task, note=f"last {row.get('status', '?')}{best}")

    def done(self, count: int, _total: int) -> None:
        """Set the points done (the sweep's ``progress`` callback)."""
        self.bar.update(self.task, completed=count)
