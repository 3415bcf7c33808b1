"""Atomic file writes: a temporary file in the destination folder, then a rename.

A reader never sees half a file, and a failed write leaves the old file (if any) as it was.
A new file gets the mode a plain ``open(path, "w")`` would give it (0666 less the umask),
not the 0600 of :func:`tempfile.mkstemp`.
Used by every single-file writer in the package (run files, plots, label maps, overlays);
files that belong together (a checkpoint's weights and sidecar, an export and its
metadata, a training run's checkpoints and metrics) go through :func:`write_files_atomically`:
one commit, which a kill at any moment cannot split.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "StagedFolder", "check_new_folder", "check_output_path", "finish_interrupted_commits", "refuse_to_replace",
    "remove_stale_temporaries", "write_atomically", "write_files_atomically",
]


def check_output_path(path: str | os.PathLike, create_folder: bool = False, overwrite: bool = True) -> Path:
    """``path`` as a :class:`Path` once it is known to name a file that can be written.

    Raises ``ValueError`` for a folder and ``FileNotFoundError`` for a missing folder (which
    is created instead with ``create_folder``), and ``FileExistsError`` for a file that exists
    when ``overwrite`` is false (:func:`refuse_to_replace`). Call it before long work whose
    result goes there, so that a typo in the output path does not cost the work.
    """
    path = Path(path)
    refuse_to_replace([path], overwrite or path.is_dir())
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


def check_new_folder(path: str | os.PathLike, overwrite: bool | None = None) -> Path:
    """``path`` as a :class:`Path` once it is known to name a folder a command may fill: new
    or empty, or any folder with ``overwrite=True``. ``None``: the command has no
    ``--overwrite`` (the message then does not offer it). Raises ``ValueError`` for a file
    and ``FileExistsError`` for a folder that holds something; call it before the work."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output folder {path} is a file; give a folder")
    if path.is_dir() and not overwrite and any(path.iterdir()):
        hint = "choose another --out" if overwrite is None else "give --overwrite to write into it, or choose another folder"
        raise FileExistsError(f"{path} is not empty; {hint}")
    return path


def refuse_to_replace(paths: Iterable[str | os.PathLike], overwrite: bool = False) -> None:
    """The rule of every command that writes files: it never replaces a file it did not make
    in this invocation unless the user asks (``--overwrite``, ``overwrite=True``). Raises
    ``FileExistsError`` naming the first of ``paths`` that exists; call it before the work."""
    if overwrite:
        return
    for path in map(Path, paths):
        if path.exists() or path.is_symlink():
            raise FileExistsError(f"{path} already exists; give --overwrite to replace it, or choose another output")


class StagedFolder:
    """Outputs of many files (a prediction's masks) written into a hidden folder inside
    ``folder`` and moved into place only when all are written (:meth:`commit`): a failure on
    the tenth image leaves no nine masks behind (:meth:`discard`), and ``folder`` itself is
    removed again when this invocation created it and it stayed empty. As a context manager
    (``with StagedFolder(out) as staged:``) it commits when the block ends and discards when
    it raises."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.created = not self.folder.exists()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=".cnnzoo-staging-", dir=self.folder))
        except OSError as err:
            raise OSError(f"cannot create the output folder {self.folder}: {err.strerror or err}") from None

    def __enter__(self) -> StagedFolder:
        return self

    def __exit__(self, kind, error, trace) -> None:
        """Commit when the block ends normally, discard when it raised (also Ctrl-C)."""
        if kind is None:
            self.commit()
        else:
            self.discard()

    def final(self, staged: Path) -> Path:
        """Where a file written under :attr:`path` goes."""
        return self.folder / Path(staged).relative_to(self.path)

    def commit(self) -> None:
        for staged in sorted(path for path in self.path.rglob("*") if path.is_file()):
            target = self.final(staged)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
        shutil.rmtree(self.path, ignore_errors=True)

    def discard(self) -> None:
        """Remove what was staged (and ``folder``, when this invocation made it and it is empty)."""
        shutil.rmtree(self.path, ignore_errors=True)
        if self.created:
            try:
                self.folder.rmdir()
            except OSError:
                pass  # something else was put there meanwhile: left alone


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
    """Write several files as one commit: an interruption (an error, Ctrl-C, kill -9, a power
    cut) leaves either every old file or every new one, never a mix.

    Each payload goes to a temporary file beside its path, flushed to disk; then a journal
    naming every ``temporary -> path`` rename is written (atomically) into the folder of the
    last path: that is the commit. Then the renames, in the mapping's order, and the journal
    is removed. A process killed after the commit leaves the journal behind, and whoever
    reads the files next finishes the renames first (:func:`finish_interrupted_commits`); one
    killed before it leaves only temporary files, which :func:`remove_stale_temporaries`
    clears. A failure while writing leaves every path as it was and no temporary behind.
    """
    paths = [Path(path) for path in payloads]
    temporaries: dict[Path, str] = {}
    journal: Path | None = None
    try:
        for path, payload in zip(paths, payloads.values()):
            temporaries[path] = _synced_temporary(path, payload)
        journal = _write_journal(paths[-1].parent, [(temporaries[path], path) for path in paths])
        for path in paths:
            _finish_rename(temporaries.pop(path), path)
        os.unlink(journal)
        _sync_folder(journal.parent)
    except OSError as err:
        raise OSError(f"cannot write {', '.join(map(str, paths))}: {err.strerror or err}") from None
    finally:
        if journal is None or not journal.exists():  # before the commit: nothing of the new files stays
            for temporary in temporaries.values():
                if os.path.exists(temporary):
                    os.unlink(temporary)
    return paths


JOURNAL_PREFIX = ".cnnzoo-commit-"


def _write_journal(folder: Path, renames: list[tuple[str, Path]]) -> Path:
    """The commit record of :func:`write_files_atomically`: a JSON list of ``[temporary,
    path]`` pairs, relative to ``folder`` where they can be, written atomically and synced."""
    entries = [[os.path.relpath(temporary, folder), os.path.relpath(path, folder)] for temporary, path in renames]
    journal = folder / f"{JOURNAL_PREFIX}{uuid.uuid4().hex}.json"
    temporary = _synced_temporary(journal, json.dumps({"renames": entries}).encode())
    try:
        os.replace(temporary, journal)
    except BaseException:
        os.unlink(temporary)
        raise
    _sync_folder(folder)
    return journal


def _synced_temporary(path: Path, payload: bytes) -> str:
    """``payload`` in a new temporary file beside ``path``, flushed to disk; its name (no
    temporary is left when the write fails)."""
    handle, temporary = _temporary_beside(path)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def _finish_rename(temporary: str | Path, path: Path) -> None:
    try:
        os.replace(temporary, path)
    except FileNotFoundError:
        if not Path(path).exists():  # not a reader that finished the commit first
            raise


def _sync_folder(folder: Path) -> None:
    """Make the renames in ``folder`` durable (where the system allows opening a folder)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def finish_interrupted_commits(folder: str | os.PathLike) -> int:
    """Complete every commit of :func:`write_files_atomically` in ``folder`` that a process
    left half-done (its journal is there): the renames not yet made are made, the journal
    removed. Returns how many files were put in place; 0 when there was nothing to do.
    Raises ``OSError`` naming the folder when the files cannot be moved (a read-only copy)."""
    folder = Path(folder)
    done = 0
    for journal in sorted(folder.glob(f"{JOURNAL_PREFIX}*.json")):
        try:
            entries = json.loads(journal.read_text())["renames"]
        except FileNotFoundError:
            continue  # the writer finished it meanwhile
        except (ValueError, KeyError, TypeError):
            continue  # not a journal of ours: left as it is
        try:
            for temporary, path in entries:
                if (folder / temporary).exists():
                    _finish_rename(folder / temporary, folder / path)
                    done += 1
            journal.unlink(missing_ok=True)
        except OSError as err:
            raise OSError(f"an interrupted save in {folder} could not be completed ({journal.name}): "
                          f"{err.strerror or err}") from None
    if done:
        _sync_folder(folder)
    return done


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of writes in ``folder`` that never committed (a process
    killed while writing them); only for the folder's one writer (a run resuming), as a
    temporary may be another process's write in progress. Finishes interrupted commits
    first, so no committed file is lost. Returns the files removed."""
    folder = Path(folder)
    finish_interrupted_commits(folder)
    stale = [path for path in folder.glob(".*.tmp") if path.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale
