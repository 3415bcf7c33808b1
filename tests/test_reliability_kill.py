"""A training run killed (SIGKILL: no handler runs) at every step of an epoch's save, reproduced
deterministically: the run directory always holds a whole checkpoint set and metrics that match
it, and ``--resume`` from there ends bit for bit where an uninterrupted run ends.

The child process counts the file-system steps of the second epoch's commit (each temporary
file flushed with ``fsync``, each ``os.replace``) and kills itself at step K; the test runs it
for every K from the first step to the last.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from cnnzoo.cli.main import main
from cnnzoo.engine.checkpoint import read_checkpoint

from tests.test_engine_train import make_class_folder

pytestmark = pytest.mark.slow

CHILD = textwrap.dedent('''
    import os, signal, sys
    from cnnzoo.engine import rundir
    kill_at, argv = int(sys.argv[1]), sys.argv[2:]
    commits, steps = [0], [0]

    def step():
        if commits[0] == 2:  # the second epoch's commit
            steps[0] += 1
            if steps[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    real_replace, real_fsync, real_commit = os.replace, os.fsync, rundir.RunDir.commit_epoch
    def replace(source, target):
        step()
        return real_replace(source, target)
    def fsync(descriptor):
        step()
        return real_fsync(descriptor)
    def commit(self, payloads, history):
        commits[0] += 1
        real_commit(self, payloads, history)
        if commits[0] == 2:
            print(f"STEPS {steps[0]}", flush=True)
    os.replace, os.fsync, rundir.RunDir.commit_epoch = replace, fsync, commit
    from cnnzoo.cli.main import main
    sys.exit(main(argv))
''')


def train_args(data: Path, out: Path, epochs: int, resume: bool = False) -> list[str]:
    where = ["--resume", str(out)] if resume else ["resnet20", "--data", str(data), "--out", str(out)]
    return ["train", *where, "--epochs", str(epochs), "--batch-size", "8", "--progress", "log",
            "--threads", "1", "--amp", "none", "--no-channels-last", "--augment", "default", "--seed", "3"]


def run_child(kill_at: int, args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", CHILD, str(kill_at), *args], capture_output=True, text=True,
                          env=env, timeout=300)


def csv_rows(run_dir: Path) -> int:
    with open(run_dir / "metrics.csv", newline="") as stream:
        return len(list(csv.DictReader(stream)))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The images, an uninterrupted 3-epoch run's final weights, and how many steps an
    epoch's commit takes (counted by the child without killing)."""
    root = tmp_path_factory.mktemp("kill")
    data = make_class_folder(root / "images", per_class=6)
    done = run_child(10**9, train_args(data, root / "straight", 3))
    assert done.returncode == 0, done.stderr
    steps = int(next(line for line in done.stdout.splitlines() if line.startswith("STEPS")).split()[1])
    return data, read_checkpoint(root / "straight", "last")[0], steps


def test_every_step_of_the_commit_is_counted(reference):
    # best (when it improved) and last (weights, optimizer state, sidecar) and metrics.csv:
    # an fsync and a rename each, plus the journal's fsync, rename and folder syncs.
    _, _, steps = reference
    assert steps >= 2 * 4 + 2


@pytest.mark.parametrize("kill_at", range(1, 17))
def test_a_kill_at_any_step_of_a_save_loses_nothing_and_resumes_bit_for_bit(reference, tmp_path, kill_at):
    data, final_weights, steps = reference
    if kill_at > steps:
        pytest.skip(f"the commit takes {steps} steps")
    run_dir = tmp_path / "run"
    killed = run_child(kill_at, train_args(data, run_dir, 3))
    assert killed.returncode == -9, killed.stderr  # SIGKILL: no clean-up code ran

    weights, meta = read_checkpoint(run_dir, "last")  # finishes a commit the kill cut short
    assert meta.epoch in (1, 2)
    assert [row["epoch"] for row in meta.history] == list(range(1, meta.epoch + 1))
    assert csv_rows(run_dir) == meta.epoch  # metrics.csv was committed with the checkpoints
    best_weights, best_meta = read_checkpoint(run_dir, "best")
    assert best_meta.epoch <= meta.epoch

    threads = torch.get_num_threads()
    try:  # the resume in this process (one start-up fewer), with the child's one thread
        assert main(train_args(data, run_dir, 3, resume=True)) == 0
    finally:
        torch.set_num_threads(threads)
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp") or p.name.startswith(".cnnzoo-commit")]
    assert csv_rows(run_dir) == 3
    weights, meta = read_checkpoint(run_dir, "last")
    assert meta.epoch == 3
    for name, tensor in final_weights.items():
        assert torch.equal(weights[name], tensor), name


TOGETHER = textwrap.dedent('''
    import os, sys, time
    from cnnzoo.engine import rundir
    rundir.time.strftime = lambda fmt, *args: "20261202-101010"  # both runs in one second
    go, argv = sys.argv[1], sys.argv[2:]
    while not os.path.exists(go):  # both processes are up: start together
        time.sleep(0.005)
    from cnnzoo.cli.main import main
    sys.exit(main(argv))
''')


@pytest.mark.parametrize("named", [False, True])
def test_two_runs_started_together_never_share_a_directory(reference, tmp_path, named):
    data = reference[0]
    go = tmp_path / "go"
    args = ["train", "resnet20", "--data", str(data), "--epochs", "1", "--batch-size", "8", "--progress", "log",
            "--threads", "1", *(["--out", str(tmp_path / "runs" / "mine")] if named else [])]
    children = [subprocess.Popen([sys.executable, "-c", TOGETHER, str(go), *args], cwd=tmp_path, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    (tmp_path / "go").touch()
    results = [(child.wait(timeout=300), child.stderr.read()) for child in children]
    codes = sorted(code for code, _ in results)
    runs = sorted(p for p in (tmp_path / "runs").iterdir())
    if named:  # one run gets the folder the user named; the other is told, and writes nothing
        assert codes == [0, 2], results
        assert any("another run" in err or "already exists" in err for _, err in results), results
        assert [p.name for p in runs] == ["mine"]
    else:  # a default name taken moves on to -2
        assert codes == [0, 0], results
        assert [p.name for p in runs] == ["resnet20-images-20261202-101010", "resnet20-images-20261202-101010-2"]
    for run in runs:
        assert read_checkpoint(run, "last")[1].epoch == 1
