"""What cnnzoo's commands write, under bad input: no file replaced that the command did not
make unless asked (``--overwrite``), a checkpoint never replaced by an export, nothing
half-written when a prediction fails part-way, no empty folder after a bad option, and a
request larger than the machine refused in one line before it is allocated."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnzoo.cli.main import main, out_of_memory_message
from cnnzoo.engine import predict as predict_module
from cnnzoo.engine.checkpoint import read_checkpoint
from cnnzoo.engine.config import UPPER_BOUNDS
from cnnzoo.utils.atomic import StagedFolder, check_output_path, refuse_to_replace
from cnnzoo.utils.memory import available_bytes, check_fits_in_memory

from tests.test_engine_train import make_class_folder


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A one-epoch classifier run on tiny images."""
    root = tmp_path_factory.mktemp("outputs")
    data = make_class_folder(root / "images", per_class=4)
    assert main(["train", "resnet20", "--data", str(data), "--out", str(root / "run"), "--epochs", "1",
                 "--batch-size", "4", "--progress", "log"]) == 0
    return root / "run"


def test_refuse_to_replace_names_the_file_and_the_flag(tmp_path):
    (tmp_path / "b.png").write_bytes(b"mine")
    refuse_to_replace([tmp_path / "a.png"])  # a new file: fine
    with pytest.raises(FileExistsError, match=r"b\.png already exists; give --overwrite"):
        refuse_to_replace([tmp_path / "a.png", tmp_path / "b.png"])
    refuse_to_replace([tmp_path / "b.png"], overwrite=True)
    with pytest.raises(FileExistsError):
        check_output_path(tmp_path / "b.png", overwrite=False)


def test_export_never_replaces_a_checkpoint_even_with_overwrite(run_dir, capsys):
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    for out in ("best.safetensors", "best.onnx"):  # best.onnx's sidecar would be best.json
        for extra in ([], ["--overwrite"]):
            err = one_line_error(capsys, ["export", str(run_dir), "--out", str(run_dir / out), *extra])
            assert "checkpoint" in err and "export" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    read_checkpoint(run_dir, "best")


def test_export_refuses_an_existing_file_unless_asked(run_dir, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"someone's file")
    assert "model.onnx already exists; give --overwrite" in one_line_error(capsys, ["export", str(run_dir), "--out",
                                                                                    str(out)])
    assert out.read_bytes() == b"someone's file"
    assert main(["export", str(run_dir), "--out", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:4] != b"some" and json.loads((tmp_path / "model.json").read_text())["task"]


def test_predict_refuses_existing_outputs_and_replaces_them_when_asked(run_dir, tmp_path, capsys):
    images = make_class_folder(tmp_path / "in", per_class=1)
    out = tmp_path / "out"
    assert main(["predict", str(run_dir), str(images), "--out", str(out)]) == 0
    first = (out / "predictions.json").read_bytes()
    assert "predictions.json already exists" in one_line_error(capsys, ["predict", str(run_dir), str(images),
                                                                        "--out", str(out)])
    assert main(["predict", str(run_dir), str(images), "--out", str(out), "--overwrite"]) == 0
    assert json.loads((out / "predictions.json").read_bytes()) == json.loads(first)
    assert sorted(p.name for p in out.iterdir()) == ["predictions.json"]  # no staging folder left


def test_a_segmentation_failing_on_a_later_image_writes_no_mask(tmp_path, monkeypatch):
    from cnnzoo.engine.runmeta import RunMeta
    from cnnzoo.registry import create_model

    images = tmp_path / "in"
    images.mkdir()
    for index in range(3):
        Image.fromarray(np.full((16, 16, 3), 40 * index, np.uint8)).save(images / f"{index}.png")
    meta = RunMeta(model="unet", model_kwargs={"base_width": 4, "padding": True}, task="segmentation",
                   num_classes=2, in_chans=3, class_names=["background", "thing"], mean=(0.5,) * 3, std=(0.5,) * 3,
                   image_size=(16, 16), ignore_index=None, data="drawn", epoch=1, metrics={})
    model = create_model("unet", num_classes=2, in_chans=3, base_width=4, padding=True).eval()
    real_read, calls = predict_module.read_image, []

    def fails_on_the_third(path, channels=None):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("disk gone")
        return real_read(path, channels=channels)

    monkeypatch.setattr(predict_module, "read_image", fails_on_the_third)
    monkeypatch.setattr(predict_module, "_load", lambda *args: predict_module.Trained(model, meta))
    out = tmp_path / "masks"
    with pytest.raises(OSError, match="disk gone"):
        predict_module.predict("a-run", [images], out=out)
    assert len(calls) == 3 and not out.exists()  # two masks were made, none was left behind
    monkeypatch.setattr(predict_module, "read_image", real_read)
    result = predict_module.predict("a-run", [images], out=out)
    assert sorted(p.name for p in out.iterdir()) == [f"{i}_mask.png" for i in range(3)]
    assert [p.mask for p in result.predictions] == [out / f"{i}_mask.png" for i in range(3)]


def test_staged_folder_keeps_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    staged = StagedFolder(tmp_path)
    (staged.path / "a.png").write_bytes(b"x")
    staged.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"]
    staged = StagedFolder(tmp_path / "new" / "deeper")
    (staged.path / "sub").mkdir()
    (staged.path / "sub" / "b.png").write_bytes(b"y")
    assert staged.final(staged.path / "sub" / "b.png") == tmp_path / "new" / "deeper" / "sub" / "b.png"
    staged.commit()
    assert (tmp_path / "new" / "deeper" / "sub" / "b.png").read_bytes() == b"y"
    assert sorted(p.name for p in (tmp_path / "new" / "deeper").iterdir()) == ["sub"]


def test_segment_classic_and_compare_refuse_to_replace(tmp_path, capsys):
    image = tmp_path / "photo.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    (tmp_path / "mask.png").write_bytes(b"old")
    err = one_line_error(capsys, ["segment-classic", "kmeans", str(image), "--k", "2", "--out", str(tmp_path / "mask.png")])
    assert "already exists; give --overwrite" in err and (tmp_path / "mask.png").read_bytes() == b"old"
    (tmp_path / "table.md").write_text("old")
    assert "already exists" in one_line_error(capsys, ["compare-segmenters", "--data", "shapes", "--out", str(tmp_path / "table.md")])
    (tmp_path / "plot.png").write_text("old")
    assert "already exists" in one_line_error(capsys, ["benchmark", "resnet20", "--plot", str(tmp_path / "plot.png")])


def test_an_experiment_with_a_bad_option_leaves_no_folder(tmp_path):
    from cnnzoo.engine.experiments import Recipe, run_experiment

    out = tmp_path / "exp"
    with pytest.raises(ValueError):
        run_experiment("degradation", Recipe(epochs=1, train_size=8, val_size=4, lr=float("inf")), out=out)
    assert not out.exists()


def test_a_request_larger_than_the_free_memory_is_refused_before_it_is_made(tmp_path, capsys):
    free = available_bytes()
    if free is None:
        pytest.skip("/proc/meminfo is not there")
    check_fits_in_memory(1024, "a kilobyte")
    with pytest.raises(MemoryError, match=r"a test needs .* GiB, and .* GiB are free"):
        check_fits_in_memory(free * 2, "a test")
    err = one_line_error(capsys, ["train", "resnet20", "--data", "fashion-mnist", "--image-size", "60000",
                                  "--out", str(tmp_path / "run")])
    assert "not enough memory: reading one 60000x60000 image" in err and not (tmp_path / "run").exists()


def test_an_allocation_the_allocator_refuses_is_one_line_with_its_size():
    cpu = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 43170000000 bytes. Error code 12 (Cannot allocate memory)")
    assert out_of_memory_message(cpu).startswith("not enough memory: the request needed 40.2 GiB at once")
    cuda = RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB (GPU 0; 79.15 GiB total capacity)")
    assert "20.00 GiB" in out_of_memory_message(cuda)
    assert out_of_memory_message(RuntimeError("shapes cannot be multiplied")) is None


def test_a_model_too_large_for_the_machine_ends_in_one_line(tmp_path, capsys):
    # U-Net at base width 100,000: about 90 G parameters, 335 GiB of float32 weights.
    err = one_line_error(capsys, ["train", "unet", "--data", "shapes", "-k", "base_width=100000", "--epochs", "1",
                                  "--out", str(tmp_path / "run")])
    assert "not enough memory" in err and not (tmp_path / "run").exists()


@pytest.mark.parametrize("option", sorted(UPPER_BOUNDS))
def test_counts_above_any_run_are_refused(tmp_path, capsys, option):
    flag = "--" + option.replace("_", "-")
    err = one_line_error(capsys, ["train", "resnet20", "--data", "fashion-mnist", flag,
                                  str(UPPER_BOUNDS[option] + 1), "--out", str(tmp_path / "run")])
    assert f"option {option!r} must be at most {UPPER_BOUNDS[option]}" in err
