"""Atomic file writes: a temporary file in the destination folder, then a rename.

A reader never sees half a file, and a failed write leaves the old file (if any) as it was.
A new file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask),
not the 0600 of :func:`tempfile.mkstemp`.
Used by every single-file writer in the package (run files, plots, label maps, overlays);
files that belong together (a checkpoint's weights and sidecar, an export and its
metadata) go through :func:`write_files_atomically`: all written first, then all renamed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

__all__ = ["check_output_path", "write_atomically", "write_files_atomically"]


def check_output_path(path: str | os.PathLike, create_folder: bool = False) -> Path:
    """``path`` as a :class:`Path` once it is known to name a file that can be written.

    Raises ``ValueError`` for a folder and ``FileNotFoundError`` for a missing folder (which
    is created instead with ``create_folder``). Call it before long work whose result goes
    there, so that a typo in the output path does not cost the work.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder; give a file name")
    folder = path.parent
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"cannot create the folder {folder}: {err.strerror or err}") from None
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {folder}")
    return path


def _new_file_mode() -> int:
    """The mode ``open()`` gives a new file under the process's umask (mkstemp's are 0600)."""
    umask = os.umask(0)  # the one way to read it: set, then put it back at once
    os.umask(umask)
    return 0o666 & ~umask


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A temporary file next to ``path`` (descriptor, name), with the mode a plain write would give it."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, _new_file_mode())
    except OSError:
        os.close(handle)
        os.unlink(temporary)
        raise
    return handle, temporary


def write_atomically(path: str | os.PathLike, write: Callable[[BinaryIO], None], create_folder: bool = False) -> Path:
    """Call ``write(stream)`` on a temporary file next to ``path``, then rename it to ``path``.

    Errors a user can cause (a folder, a missing folder, no permission) are raised as
    ``ValueError`` / ``OSError`` naming ``path``, not the temporary file.
    """
    path = check_output_path(path, create_folder)
    try:
        handle, temporary = _temporary_beside(path)
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        try:
            os.replace(temporary, path)
        except OSError as err:
            raise OSError(f"cannot write {path}: {err.strerror or err}") from None
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return path


def write_files_atomically(payloads: Mapping[Path, bytes]) -> list[Path]:
    """Write each payload to a temporary file beside its path (flushed to disk), then rename
    them all, in the mapping's order (put the file a reader looks for first last).

    A failure while writing leaves every path as it was and no temporary behind: the files
    appear together or not at all (short of a crash between two renames).
    """
    temporaries: dict[Path, str] = {}
    try:
        for path, payload in payloads.items():
            handle, temporaries[path] = _temporary_beside(path)
            with os.fdopen(handle, "wb") as stream:
                stream.write(payload)
                stream.flush()
                os.fsync(stream.fileno())
        for path in payloads:
            os.replace(temporaries[path], path)
            del temporaries[path]
    except OSError as err:
        raise OSError(f"cannot write {', '.join(map(str, payloads))}: {err.strerror or err}") from None
    finally:
        for temporary in temporaries.values():
            if os.path.exists(temporary):
                os.unlink(temporary)
    return list(payloads)
