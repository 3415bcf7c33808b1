"""The run directory: everything one training run leaves behind.

::

    RUN_DIR/
      config.json              the resolved config (every option the run used)
      metrics.csv              one row per epoch (committed with the checkpoints of each epoch)
      best.safetensors/.json   the weights with the best validation metric, and its sidecar
      last.safetensors/.json   the latest epoch's weights and sidecar ...
      last.optim.safetensors   ... and its optimizer / scheduler / RNG tensors, for --resume
      plots/curves.png         loss and metric curves
      plots/confusion.png      the confusion matrix of the best epoch
      plots/overlays.png       segmentation: image, truth and prediction, a few val images
      tensorboard/             TensorBoard events (cnnzoo.engine.tensorboard_log: asked for with
                               the ``tensorboard`` option, or unset and the package installed)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

from cnnzoo.engine.tensorboard_log import TensorBoardLog, open_tensorboard
from cnnzoo.utils.atomic import remove_stale_temporaries, write_atomically, write_files_atomically

__all__ = [
    "CLAIM", "RunDir", "RunInterrupted", "check_new_run_dir", "claim_run_dir", "default_run_dir", "metrics_csv",
]


def default_run_dir(model: str, data: str, root: str | Path = "runs") -> Path:
    """``runs/MODEL-DATA-YYYYmmdd-HHMMSS`` (DATA: the built-in name or the folder's name)."""
    data_name = Path(data.rstrip("/\\")).name or "data"
    return Path(root) / f"{model}-{data_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_new_run_dir(path: str | Path) -> Path:
    """``path`` as a Path once it is known to be usable for a new run (missing or empty)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"run directory {path} is a file")
    if path.is_dir() and any(entry.name != CLAIM for entry in path.iterdir()):
        raise ValueError(
            f"run directory {path} already exists and is not empty; continue it with --resume {path} "
            "or choose another --out"
        )
    return path


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run, saying what is saved and the command that continues it."""

    def __init__(self, run_dir: Path, saved_epoch: int) -> None:
        if saved_epoch:
            message = f"epoch {saved_epoch} is saved in {run_dir}; continue with: cnnzoo train --resume {run_dir}"
        else:
            message = f"no epoch had been saved, so {run_dir} is removed"
        super().__init__(message)


CLAIM = ".cnnzoo-run"  # created exclusively: the one run that writes into a directory


def claim_run_dir(path: str | Path, default_name: bool) -> Path:
    """Make ``path`` this run's, atomically: checking that a folder is free and creating it
    are two steps another run started in the same second can come between, so the run
    creates :data:`CLAIM` inside it with ``O_EXCL``, which only one process can. When that
    fails a default name (``runs/MODEL-DATA-TIMESTAMP``) moves on to ``-2``, ``-3``, ...; a
    name the user gave is an error. Returns the directory claimed."""
    path = Path(path)
    for attempt in range(1, 1000):
        candidate = path if attempt == 1 else path.with_name(f"{path.name}-{attempt}")
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(candidate / CLAIM, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not default_name:
                raise ValueError(f"run directory {path} is being written by another run (started at the same time); "
                                 "choose another --out") from None
            continue
        except OSError as err:
            raise OSError(f"cannot create the run directory {candidate}: {err.strerror or err}") from None
        with os.fdopen(descriptor, "w") as stream:
            stream.write(f"pid {os.getpid()} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        if any(entry.name != CLAIM for entry in candidate.iterdir()) and default_name:
            continue  # a folder of that name with another run's files in it: not ours either
        return candidate
    raise ValueError(f"no free run directory next to {path}")


class RunDir:
    """Writes a run's files; every method is a no-op when ``enabled`` is false (the
    processes other than rank 0 under torchrun). ``tensorboard`` is the run's option of that
    name (:func:`cnnzoo.engine.tensorboard_log.open_tensorboard`)."""

    def __init__(self, path: str | Path, enabled: bool = True, tensorboard: bool | None = None) -> None:
        self.path = Path(path)
        self.enabled = enabled
        self.tensorboard = tensorboard
        self.claimed = False  # whether this run made the directory its own (create)
        self._tensorboard: TensorBoardLog | None = None
        self._config: dict[str, Any] | None = None

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    def create(self, claim: bool = True, default_name: bool = False) -> Path:
        """The directory (claimed for this run with :func:`claim_run_dir` unless it is a run
        being resumed) and its ``plots/``, and the TensorBoard log (a warning when it is asked
        for and the package is missing): before the first epoch. Returns the directory."""
        if self.enabled:
            if claim:
                self.path = claim_run_dir(self.path, default_name)
                self.claimed = True
            try:
                self.plots.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise OSError(f"cannot create the run directory {self.path}: {err.strerror or err}") from None
            self._tensorboard = open_tensorboard(self.path / "tensorboard", self.tensorboard)
        return self.path

    def write_config(self, config: dict[str, Any]) -> None:
        self._config = config  # also the hyper-parameters TensorBoard gets at the end
        if self.enabled:
            text = json.dumps(config, indent=2, allow_nan=False) + "\n"
            write_atomically(self.path / "config.json", lambda stream: stream.write(text.encode()))

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """``metrics.csv`` on its own (a resumed run rewrites it from its checkpoint's history)."""
        if self.enabled:
            write_atomically(self.metrics_file, lambda stream: stream.write(metrics_csv(history)))

    def recover(self, history: list[dict[str, Any]]) -> None:
        """A resumed run's first write: the temporary files of a save that was killed before
        it committed are removed, and ``metrics.csv`` is rewritten from the history of the
        checkpoint it resumes (the one record a resume trusts)."""
        if self.enabled:
            remove_stale_temporaries(self.path)
            self.write_metrics(history)

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.csv"

    def commit_epoch(self, payloads: dict[Path, bytes], history: list[dict[str, Any]]) -> None:
        """An epoch's checkpoint files and ``metrics.csv`` in one commit
        (:func:`cnnzoo.utils.atomic.write_files_atomically`): a kill at any moment leaves the
        previous epoch's set or this one's, and metrics that match the checkpoints."""
        if self.enabled:
            write_files_atomically({**payloads, self.metrics_file: metrics_csv(history)})

    def log_tensorboard(self, epoch: int, row: dict[str, Any]) -> None:
        """The scalars of one epoch as TensorBoard events, when there is a log."""
        if self._tensorboard is not None:
            self._tensorboard.log_epoch(epoch, {key: value for key, value in row.items() if _is_scalar(value)})

    def close(self, failed: bool = False) -> None:
        """The end of the run: TensorBoard gets the pictures under ``plots/`` and the options
        with the final metrics. A run that ``failed`` before it saved a checkpoint (a NaN in
        epoch 1, Ctrl-C, an error) had made nothing worth keeping: the directory it claimed
        is removed, so that ``--out`` can be used again."""
        if self._tensorboard is not None:
            self._tensorboard.finish(self._config, self.plots)
        self._tensorboard = None
        if failed and self.enabled and self.claimed and not any(self.path.glob("*.safetensors")):
            shutil.rmtree(self.path, ignore_errors=True)


def metrics_csv(history: list[dict[str, Any]]) -> bytes:
    """The text of ``metrics.csv``: one row per epoch, a column per scalar (lists are left out)."""
    columns: list[str] = []
    for row in history:
        columns += [key for key, value in row.items() if _is_scalar(value) and key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: _format(row.get(key)) for key in columns})
    return buffer.getvalue().encode()


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format(value: Any) -> Any:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return "" if value is None else value
