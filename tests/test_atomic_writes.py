"""Atomic writes (temporary file, then rename), shared by the plots, label maps and overlays."""

import os
import stat
from pathlib import Path

import pytest

from cnnzoo.utils.atomic import check_output_path, write_atomically, write_files_atomically


def test_writes_the_file_and_leaves_nothing_else(tmp_path):
    path = write_atomically(tmp_path / "out.bin", lambda stream: stream.write(b"abc"))
    assert path == tmp_path / "out.bin" and path.read_bytes() == b"abc"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def fail(stream):
        stream.write(b"half a fi")
        raise ValueError("format not supported")

    with pytest.raises(ValueError, match="format not supported"):
        write_atomically(path, fail)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_folder_is_not_a_file_name(tmp_path):
    with pytest.raises(ValueError, match=f"cannot write {tmp_path}: it is a folder"):
        write_atomically(tmp_path, lambda stream: stream.write(b"x"))


def test_missing_folder_is_an_error_unless_asked_to_create_it(tmp_path):
    path = tmp_path / "a" / "b" / "out.bin"
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        check_output_path(path)
    assert not (tmp_path / "a").exists()
    assert check_output_path(path, create_folder=True) == path and path.parent.is_dir()
    write_atomically(tmp_path / "c" / "out.bin", lambda stream: stream.write(b"x"), create_folder=True)
    assert (tmp_path / "c" / "out.bin").read_bytes() == b"x"


def test_a_folder_that_cannot_be_created_is_named(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError, match=f"cannot create the folder {tmp_path / 'file' / 'sub'}"):
        check_output_path(tmp_path / "file" / "sub" / "out.png", create_folder=True)


def test_files_written_together_appear_together_in_order(tmp_path, monkeypatch):
    import os

    from cnnzoo.utils.atomic import write_files_atomically

    renamed, real_replace = [], os.replace
    monkeypatch.setattr(os, "replace", lambda source, target: (renamed.append(target), real_replace(source, target)))
    paths = write_files_atomically({tmp_path / "m.bin": b"weights", tmp_path / "m.xml": b"graph"})
    journal, *files = renamed  # the commit record first, then the files in order
    assert journal.name.startswith(".cnnzoo-commit-") and not journal.exists()
    assert paths == files == [tmp_path / "m.bin", tmp_path / "m.xml"]
    assert (tmp_path / "m.bin").read_bytes() == b"weights" and (tmp_path / "m.xml").read_bytes() == b"graph"


def test_a_file_that_cannot_be_written_leaves_the_others_as_they_were(tmp_path):
    from cnnzoo.utils.atomic import write_files_atomically

    (tmp_path / "model.onnx").write_bytes(b"old")
    with pytest.raises(OSError, match="cannot write"):
        write_files_atomically({tmp_path / "model.onnx": b"new", tmp_path / "missing" / "model.json": b"{}"})
    assert (tmp_path / "model.onnx").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary left


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_get_the_mode_of_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        one = write_atomically(tmp_path / "one.txt", lambda stream: stream.write(b"1"))
        two, three = write_files_atomically({tmp_path / "two.txt": b"2", tmp_path / "three.txt": b"3"})
    finally:
        os.umask(previous)
    for path in (one, two, three):
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_a_commit_cut_between_its_renames_is_finished_by_the_next_reader(tmp_path, monkeypatch):
    from cnnzoo.utils.atomic import finish_interrupted_commits, remove_stale_temporaries, write_files_atomically

    write_files_atomically({tmp_path / "a": b"old a", tmp_path / "b": b"old b"})
    real_replace = os.replace

    def cut_after_the_first_file(source, target):
        if Path(target).name == "b":
            raise KeyboardInterrupt  # Ctrl-C between the two renames
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", cut_after_the_first_file)
    with pytest.raises(KeyboardInterrupt):
        write_files_atomically({tmp_path / "a": b"new a", tmp_path / "b": b"new b"})
    monkeypatch.undo()
    assert (tmp_path / "a").read_bytes() == b"new a" and (tmp_path / "b").read_bytes() == b"old b"  # mixed ...
    assert finish_interrupted_commits(tmp_path) == 1
    assert (tmp_path / "b").read_bytes() == b"new b"  # ... until the commit is finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert finish_interrupted_commits(tmp_path) == 0
    assert remove_stale_temporaries(tmp_path) == []


def test_a_write_cut_before_its_commit_leaves_the_old_files_and_only_temporaries(tmp_path, monkeypatch):
    from cnnzoo.utils import atomic

    atomic.write_files_atomically({tmp_path / "a": b"old a", tmp_path / "b": b"old b"})
    def killed_before_the_commit(folder, renames):
        raise SystemExit("killed")

    monkeypatch.setattr(atomic, "_write_journal", killed_before_the_commit)
    monkeypatch.setattr(os, "unlink", lambda path: None)  # as a kill would: no clean-up runs
    with pytest.raises(SystemExit):
        atomic.write_files_atomically({tmp_path / "a": b"new a", tmp_path / "b": b"new b"})
    monkeypatch.undo()
    assert (tmp_path / "a").read_bytes() == b"old a" and (tmp_path / "b").read_bytes() == b"old b"
    assert atomic.finish_interrupted_commits(tmp_path) == 0
    stale = atomic.remove_stale_temporaries(tmp_path)
    assert len(stale) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
