"""Progress bars: tqdm on a terminal or in a notebook, plain lines in a log.

A tqdm bar redraws itself with carriage returns (``\\r``), which a log file
or a CI console keeps as one long garbled line. :func:`progress_bar` gives a
tqdm bar when standard error is a terminal (or tqdm's notebook widget in
Jupyter), and otherwise a :class:`LineProgress` that writes a few complete
lines (every 10 % of the total, then a last one), never a ``\\r``.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

__all__ = ["LineProgress", "progress_bar"]


class LineProgress:
    """Line-based progress for non-terminal output: tqdm's ``update`` /
    ``set_postfix`` / ``close`` interface, one line per 10 % step.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str, default='progress'
        The line's prefix.
    file : file-like or None, default=None
        Where the lines go; None is ``sys.stderr`` at the time of writing.
    steps : int, default=10
        Lines over the whole run (one each ``1 / steps`` of ``total``).

    Examples
    --------
    >>> import io
    >>> from mmexplain._core.progress import LineProgress
    >>> out = io.StringIO()
    >>> bar = LineProgress(4, desc="fit", file=out, steps=2)
    >>> for _ in range(4):
    ...     bar.update(1)
    >>> bar.close()
    >>> [line.split(" (")[0] for line in out.getvalue().splitlines()]
    ['fit: 2/4', 'fit: 4/4']
    """

    def __init__(
        self,
        total: int,
        desc: str = "progress",
        file: TextIO | None = None,
        steps: int = 10,
    ) -> None:
        self.total = max(int(total), 0)
        self.desc = desc
        self.file = file
        self.steps = max(int(steps), 1)
        self.n = 0
        self._postfix = ""
        self._shown = 0  # the last step written
        self._last_n = -1  # n at the last line written
        self._t0 = time.perf_counter()

    def _write(self) -> None:
        elapsed = time.perf_counter() - self._t0
        pct = f"{100 * self.n / self.total:.0f}%, " if self.total else ""
        line = f"{self.desc}: {self.n}/{self.total} ({pct}{elapsed:.1f} s)"
        if self._postfix:
            line += f" {self._postfix}"
        file = self.file if self.file is not None else sys.stderr
        print(line, file=file, flush=True)
        self._last_n = self.n

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` steps; write a line when a new tenth is reached."""
        self.n += int(n)
        if self.total:
            step = min(self.n * self.steps // self.total, self.steps)
            if step > self._shown:
                self._shown = step
                self._write()

    def set_postfix(self, ordered_dict: Any = None, **kwargs: Any) -> None:
        """Values shown at the end of the next line (``key=value`` pairs)."""
        items = {**dict(ordered_dict or {}), **kwargs}
        self._postfix = " ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        """Write the last line, unless the last update already did."""
        if self.n != self._last_n:
            self._write()


def progress_bar(total: int, desc: str, *, leave: bool = True) -> Any:
    """A progress bar over ``total`` steps, suited to where standard error goes.

    Parameters
    ----------
    total : int
        Number of steps.
    desc : str
        Label of the bar.
    leave : bool, default=True
        Whether a tqdm bar stays on screen when closed.

    Returns
    -------
    tqdm.tqdm or LineProgress
        tqdm's bar in a notebook or when ``sys.stderr`` is a terminal,
        else a :class:`LineProgress` (plain lines, no ``\\r``).
    """
    from tqdm.auto import tqdm

    notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)
    isatty = getattr(sys.stderr, "isatty", None)
    if notebook or (isatty is not None and isatty()):
        return tqdm(total=total, desc=desc, leave=leave)
    return LineProgress(total, desc=desc)
