"""Training progress: a tqdm bar on a terminal, plain log lines elsewhere.

Both show the running loss, the throughput (images per second) and the time left in the
epoch. Only the main process (rank 0) reports; the others get a silent instance.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """``3725.4`` -> ``"1:02:05"``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class Progress:
    """Reports one epoch at a time: :meth:`start_epoch`, :meth:`update` per batch,
    :meth:`end_epoch`; :meth:`write` for lines that must not break the bar.

    ``mode``: ``"bar"``, ``"log"`` or ``"auto"`` (a bar when ``stream`` is a terminal).
    Log lines go to ``out`` about ``lines_per_epoch`` times an epoch.
    """

    def __init__(
        self,
        mode: str = "auto",
        enabled: bool = True,
        stream: TextIO | None = None,
        out: TextIO | None = None,
        lines_per_epoch: int = 10,
    ) -> None:
        if mode not in ("auto", "bar", "log"):
            raise ValueError(f"progress must be auto, bar or log, got {mode!r}")
        self.stream = stream if stream is not None else sys.stderr
        self.out = out if out is not None else sys.stdout
        self.enabled = enabled
        if mode == "auto":
            mode = "bar" if _is_terminal(self.stream) else "log"
        self.mode = mode
        self.lines_per_epoch = lines_per_epoch
        self._bar = None

    def start_epoch(self, epoch: int, epochs: int, total_batches: int) -> None:
        self.epoch, self.epochs, self.total = epoch, epochs, total_batches
        self.done, self.images, self.loss = 0, 0, float("nan")
        self.started = time.perf_counter()
        self._next_line = 1
        if self.enabled and self.mode == "bar":
            from tqdm import tqdm

            self._bar = tqdm(
                total=total_batches, desc=f"epoch {epoch}/{epochs}", unit="batch",
                file=self.stream, leave=False, dynamic_ncols=True,
            )

    def update(self, images: int, loss: float) -> None:
        """One batch of ``images`` done, with this running mean ``loss``."""
        self.done += 1
        self.images += images
        self.loss = loss
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(f"loss {loss:.4f}, {self.throughput():.0f} img/s", refresh=False)
            self._bar.update(1)
            if self.done == self.total:
                self._bar.refresh()  # the last batch is shown even within tqdm's refresh interval
        elif self.done * self.lines_per_epoch >= self._next_line * self.total or self.done == self.total:
            self._next_line = self.done * self.lines_per_epoch // max(1, self.total) + 1
            print(
                f"epoch {self.epoch}/{self.epochs}  batch {self.done}/{self.total}  loss {loss:.4f}  "
                f"{self.throughput():.0f} img/s  ETA {format_duration(self.eta())}",
                file=self.out, flush=True,
            )

    def throughput(self) -> float:
        """Images per second since the epoch began."""
        return self.images / max(time.perf_counter() - self.started, 1e-9)

    def eta(self) -> float:
        """Seconds left in the epoch at the current pace."""
        elapsed = time.perf_counter() - self.started
        return elapsed / max(self.done, 1) * (self.total - self.done)

    def end_epoch(self) -> float:
        """Close the bar; returns the epoch's training time in seconds."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        return time.perf_counter() - self.started

    def write(self, line: str) -> None:
        """A line of results (to ``out``), without tearing the bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(line, file=self.out)
        else:
            print(line, file=self.out, flush=True)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
