"""Evaluation: crop geometry by hand, averaging arithmetic, ensembles, exact DDP metrics, reports, the CLI."""
from __future__ import annotations

import csv
import json
import math
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from datamodules import ImageFolderDataModule, SyntheticDataModule
from datamodules.transforms import pipeline, shorter_side
from pipeline.cli import main
from pipeline.evaluation import Crop, EvalConfig, EvaluationReport, Evaluator, Member, combine, crop_boxes, make_crops
from pipeline.training import ClassifierModule, EnsembleModule, load_member, prepare

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 6  # top-5 needs more than 5
TINY = ("input: [3, 16, 16]\nvars: {classes: 6}\nnodes:\n  stem: {block: conv, out: 8}\n"
        "  pool: global_pool\n  fc: {block: linear, out: classes}\n")


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


# ---------------------------------------------------------------------------------------------
# crop geometry, against boxes worked out by hand (input side 224 unless said)


def plain(crops: list[Crop]) -> list[tuple[int, int, int, int]]:
    return [(c.short, c.top, c.left, c.side) for c in crops]


def test_center_and_flip_boxes():
    # 300x400 -> shorter side 256 -> 256x341; centre crop at ((256-224)//2, (341-224)//2)
    assert crop_boxes("center", 300, 400, 224) == [Crop(256, 16, 58, 224)]
    flip = crop_boxes("flip", 300, 400, 224)
    assert flip == [Crop(256, 16, 58, 224), Crop(256, 16, 58, 224, mirror=True)]
    # portrait: 400x300 -> 341x256
    assert crop_boxes("center", 400, 300, 224) == [Crop(256, 58, 16, 224)]


def test_ten_boxes():
    crops = crop_boxes("ten", 256, 320, 224)
    corners = [(256, 0, 0, 224), (256, 0, 96, 224), (256, 32, 0, 224), (256, 32, 96, 224), (256, 16, 48, 224)]
    assert len(crops) == 10
    assert plain(crops[:5]) == corners and plain(crops[5:]) == corners
    assert [c.mirror for c in crops] == [False] * 5 + [True] * 5
    # the same geometry for another input side: everything scales with it (256/224 x 112 = 128)
    assert plain(crop_boxes("ten", 128, 160, 112)[:5]) == [(128, 0, 0, 112), (128, 0, 48, 112), (128, 16, 0, 112),
                                                           (128, 16, 48, 112), (128, 8, 24, 112)]
    assert len(crop_boxes("ten", 256, 320, 224, mirror=False)) == 5


def test_googlenet144_boxes():
    crops = crop_boxes("googlenet144", 256, 384, 224)  # landscape, loaded at any size: only the ratio counts
    assert len(crops) == 144 and sum(c.mirror for c in crops) == 72
    assert [plain([c])[0] for c in crops[72:]] == plain(crops[:72]) and all(c.mirror for c in crops[72:])
    assert [c.short for c in crops[:72]] == [256] * 18 + [288] * 18 + [320] * 18 + [352] * 18
    # scale 256: image 256x384, squares at left 0 / 64 / 128; per square 4 corners, centre, whole square
    first = plain(crops[:18])
    for k, left in enumerate((0, 64, 128)):
        assert first[6 * k:6 * k + 6] == [(256, 0, left, 224), (256, 0, left + 32, 224), (256, 32, left, 224),
                                          (256, 32, left + 32, 224), (256, 16, left + 16, 224), (256, 0, left, 256)]
    # scale 352: image 352x528, squares at 0 / 88 / 176; corners 128 apart, centre at +64
    last = plain(crops[54:72])
    assert last[6:12] == [(352, 0, 88, 224), (352, 0, 216, 224), (352, 128, 88, 224), (352, 128, 216, 224),
                          (352, 64, 152, 224), (352, 0, 88, 352)]
    # portrait: squares are top / middle / bottom
    portrait = plain(crop_boxes("googlenet144", 384, 256, 224)[:18])
    assert [portrait[6 * k + 5] for k in range(3)] == [(256, 0, 0, 256), (256, 64, 0, 256), (256, 128, 0, 256)]


def test_multi_scale_and_bad_requests():
    crops = crop_boxes("ten", 256, 256, 224, scales=[256, 320])
    assert len(crops) == 20 and {c.short for c in crops} == {256, 320}
    with pytest.raises(ValueError, match="unknown crop mode 'twelve'"):
        crop_boxes("twelve", 256, 256, 224)
    with pytest.raises(ValueError, match="less than the input side"):
        crop_boxes("ten", 256, 256, 224, scales=[200])


def coordinates(height: int, width: int) -> torch.Tensor:
    """A 2-channel image whose pixels hold their own row and column."""
    rows, cols = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                                indexing="ij")
    return torch.stack([rows, cols])


def test_crops_cut_the_pixels_of_their_boxes():
    image = coordinates(64, 80)  # loaded at the shorter side of scale 256 for a 56-pixel input
    crops = crop_boxes("ten", 64, 80, 56)
    cut = make_crops(image, crops, 56)
    assert cut.shape == (10, 2, 56, 56)
    for crop, tensor in zip(crops, cut):
        assert tensor[0, 0, 0] == crop.top and tensor[0, -1, 0] == crop.top + 55
        if crop.mirror:  # flipped left-right: the first column is the box's last
            assert tensor[1, 0, 0] == crop.left + 55 and tensor[1, 0, -1] == crop.left
        else:
            assert tensor[1, 0, 0] == crop.left and tensor[1, 0, -1] == crop.left + 55
    squares = make_crops(image, crop_boxes("googlenet144", 64, 80, 56), 56)
    assert squares.shape == (144, 2, 56, 56)
    whole = squares[5]  # scale 64, left square (0..63 x 0..63) resized to 56: spans the square
    assert whole[0, 0, 0] < 1 and whole[0, -1, 0] > 62 and whole[1, 0, -1] > 62
    assert torch.equal(squares[72 + 5], whole.flip(-1))


def test_tensor_centre_crop_equals_the_loader_centre_crop():
    image = np.random.default_rng(0).integers(0, 255, (70, 100, 3), dtype=np.uint8)
    loader = pipeline("imagenet", 56, train=False)(image=image)["image"]  # resize 64 + CenterCrop(56)
    resized = torch.from_numpy(shorter_side(64)(image=image)["image"]).permute(2, 0, 1)
    ours = make_crops(resized, crop_boxes("center", *resized.shape[1:], 56), 56)[0]
    assert torch.equal(ours, torch.from_numpy(loader).permute(2, 0, 1))


# ---------------------------------------------------------------------------------------------
# averaging


def softmax_by_hand(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_probability_and_logit_averaging_by_hand():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 4), torch.randn(2, 3, 4)  # two members, 2 images, 3 crops, 4 classes
    got = combine([a, b], [3.0, 1.0], "prob").exp()
    got_logit = combine([a, b], [3.0, 1.0], "logit").exp()
    for n in range(2):
        expected = [0.0] * 4
        for member, w in ((a, 0.75), (b, 0.25)):
            for k in range(3):
                for c, p in enumerate(softmax_by_hand(member[n, k].tolist())):
                    expected[c] += w * p / 3
        assert got[n].tolist() == pytest.approx(expected, abs=1e-6)
        mean = [0.75 * sum(a[n, k, c].item() for k in range(3)) / 3 + 0.25 * sum(b[n, k, c].item() for k in range(3)) / 3
                for c in range(4)]
        assert got_logit[n].tolist() == pytest.approx(softmax_by_hand(mean), abs=1e-6)


def test_one_member_one_crop_is_the_plain_softmax():
    z = torch.randn(5, 7) * 10
    assert torch.allclose(combine([z[:, None]]), z.log_softmax(1), atol=1e-6)


def test_crops_go_through_the_model_together_at_each_members_size():
    seen: list[tuple[int, ...]] = []

    def member(size: int):
        def forward(x):
            seen.append(tuple(x.shape))
            return x.mean((2, 3)).repeat(1, 2)[:, :4]
        return Member(forward, size)

    evaluator = Evaluator(4, EvalConfig(crops="ten", max_crops=16))
    images = [torch.rand(3, 23, 30), torch.rand(3, 30, 23), torch.rand(3, 23, 23)]  # different aspect ratios
    out = evaluator.log_probs([member(16), member(20)], images)
    assert out.shape == (3, 4) and torch.allclose(out.exp().sum(1), torch.ones(3))
    # 3 images x 10 crops per member, never one crop at a time: 20 then 10 crops per forward pass
    assert seen == [(20, 3, 16, 16), (10, 3, 16, 16), (20, 3, 20, 20), (10, 3, 20, 20)]


# ---------------------------------------------------------------------------------------------
# checkpoints, ensembles and the CLI on a tiny net and synthetic data (37 validation images: odd)


def write_config(path: Path, arch: Path, root: Path, classes: int = CLASSES) -> Path:
    config = {"seed_everything": 0,
              "trainer": {"accelerator": "cpu", "devices": 1, "logger": False, "enable_progress_bar": False,
                          "enable_model_summary": False, "default_root_dir": str(root)},
              "model": {"arch": str(arch)},
              "data": {"class_path": "datamodules.SyntheticDataModule",
                       "init_args": {"num_classes": classes, "input_shape": [3, 16, 16], "train_size": 64,
                                     "val_size": 37, "batch_size": 6}}}
    path.write_text(yaml.safe_dump(config))
    return path


def train(arch: Path, path: Path, classes: int = CLASSES, epochs: int = 2) -> Path:
    torch.manual_seed(0)
    data = SyntheticDataModule(num_classes=classes, input_shape=(3, 16, 16), train_size=64, val_size=37, batch_size=6)
    model = ClassifierModule(str(arch), num_classes=classes, input_shape=(3, 16, 16))
    trainer = L.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, data)
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluation")
    arch = root / "tiny.yaml"
    arch.write_text(TINY)
    ckpt = train(arch, root / "a.ckpt")
    return {"root": root, "arch": arch, "ckpt": ckpt, "config": write_config(root / "eval.yaml", arch, root / "out")}


def report(path: Path) -> dict:
    data = json.loads(path.read_text())
    confusion = list(csv.reader((path.parent / f"{data['stage']}_confusion.csv").open()))
    data["confusion"] = [[int(v) for v in row[1:]] for row in confusion[1:]]
    assert confusion[0][1:] == [c["class"] for c in data["per_class"]]
    with Image.open(path.parent / f"{data['stage']}_confusion.png") as png:
        assert png.format == "PNG" and min(png.size) > 4 * len(data["per_class"])
    return data


def ten_crop_accuracy_by_hand(ckpt: Path) -> float:
    """Ten crops cut by slicing, softmax averaged, argmax: written out without pipeline.evaluation."""
    model, _ = load_member(ckpt)
    model.eval()
    data = SyntheticDataModule(num_classes=CLASSES, input_shape=(3, 16, 16), val_size=37)
    data.setup()
    images, labels = data.splits["val"]
    correct = 0
    for image, label in zip(images, labels):
        big = torch.from_numpy(shorter_side(18)(image=image)["image"]).permute(2, 0, 1).float() / 255
        big = (big - 0.5) / 0.5  # the datamodule's normalisation
        boxes = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]  # 18x18, 16x16 crops: corners and centre
        crops = [big[:, t:t + 16, l:l + 16] for t, l in boxes]
        crops += [c.flip(-1) for c in crops]
        with torch.no_grad():
            probs = model(torch.stack(crops)).softmax(1).mean(0)
        correct += int(probs.argmax()) == int(label)
    return correct / len(labels)


def test_test_with_ten_crops_writes_reports_that_match_a_hand_computation(run, tmp_path, capsys):
    assert main(["test", "--config", str(run["config"]), "--ckpt_path", str(run["ckpt"]), "--eval.crops", "ten",
                 "--eval.report_dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    got = report(tmp_path / "test.json")
    assert got["samples"] == 37 and sum(map(sum, got["confusion"])) == 37
    assert got["crops"]["mode"] == "ten" and got["crops"]["per_image"] == 10
    assert got["checkpoints"] == [str(run["ckpt"])] and got["world_size"] == 1
    assert got["top1"] == pytest.approx(ten_crop_accuracy_by_hand(run["ckpt"]), abs=1e-9)
    assert got["top1"] == sum(c["correct"] for c in got["per_class"]) / 37
    assert 0 <= got["top1"] <= got["top5"] <= 1
    assert "top-1" in out and "report: " + str(tmp_path / "test.json") in out


def test_an_ensemble_of_a_checkpoint_with_itself_equals_the_checkpoint(run, tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    common = ["test", "--config", str(run["config"]), "--eval.crops", "flip"]
    assert main([*common, "--ckpt_path", str(run["ckpt"]), "--eval.report_dir", str(single)]) == 0
    assert main([*common, "--ensemble.checkpoints", f"[{run['ckpt']},{run['ckpt']}]", "--ensemble.weights",
                 "[0.3,0.7]", "--eval.report_dir", str(double)]) == 0
    a, b = report(single / "test.json"), report(double / "test.json")
    assert a["confusion"] == b["confusion"] and a["top1"] == b["top1"] and a["top5"] == b["top5"]
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert b["checkpoints"] == [str(run["ckpt"])] * 2 and b["weights"] == [0.3, 0.7]
    # and the probabilities themselves
    member, _ = load_member(run["ckpt"])
    ensemble = EnsembleModule([str(run["ckpt"])] * 2)
    member.eval(), ensemble.eval()
    x = torch.randn(5, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(ensemble.evaluator.probs(ensemble.eval_members(), (x, None)), member(x).softmax(1),
                              atol=1e-6)


def test_validate_reports_too_and_center_is_the_plain_loader(run, tmp_path):
    assert main(["validate", "--config", str(run["config"]), "--ckpt_path", str(run["ckpt"]), "--eval.report_dir",
                 str(tmp_path)]) == 0
    got = report(tmp_path / "validate.json")
    assert got["stage"] == "validate" and got["samples"] == 37
    assert got["crops"] == {"mode": "center", "per_image": 1, "scales": None, "mirror": None, "average": "prob",
                            "on_tensors": False}


def test_evaluator_metrics_leave_checkpoints_unchanged(run):
    state = torch.load(run["ckpt"], weights_only=True)["state_dict"]
    assert not any(k.startswith("evaluator.") for k in state)
    assert ClassifierModule(str(run["arch"]), num_classes=CLASSES).state_dict().keys() == state.keys()


def test_predict_writes_top_k_csv_in_input_order(run, tmp_path):
    assert main(["predict", "--config", str(run["config"]), "--ckpt_path", str(run["ckpt"]), "--eval.top_k", "2",
                 "--eval.report_dir", str(tmp_path)]) == 0
    rows = list(csv.reader((tmp_path / "predictions.csv").open()))
    assert rows[0] == ["file", "label_1", "prob_1", "label_2", "prob_2"]
    assert [r[0] for r in rows[1:]] == [f"val[{i}]" for i in range(37)]
    for r in rows[1:]:
        assert {r[1], r[3]} <= {str(c) for c in range(CLASSES)} and r[1] != r[3]
        assert 1 >= float(r[2]) >= float(r[4]) >= 0


@pytest.fixture(scope="module")
def other_classes(run):
    """A checkpoint of the same net with 3 classes."""
    return train(run["arch"], run["root"] / "three.ckpt", classes=3, epochs=1)


def bad_request(case: str, run: dict, other_classes: Path) -> tuple[list[str], str]:
    args = {"missing": ["test", "--ensemble.checkpoints", "[nope.ckpt]"],
            "unknown mode": ["test", "--ckpt_path", str(run["ckpt"]), "--eval.crops", "twelve"],
            "class counts": ["test", "--ensemble.checkpoints", f"[{run['ckpt']},{other_classes}]"],
            "both": ["test", "--ckpt_path", str(run["ckpt"]), "--ensemble.checkpoints", f"[{run['ckpt']}]"],
            "bad scale": ["test", "--ckpt_path", str(run["ckpt"]), "--eval.crops", "ten", "--eval.scales", "[100]"],
            "fit": ["fit", "--ensemble.checkpoints", f"[{run['ckpt']}]"]}[case]
    words = {"missing": "checkpoint not found: nope.ckpt", "unknown mode": "eval.crops",
             "class counts": "different numbers of classes", "both": "not both", "bad scale": "less than the input side",
             "fit": "validate, test and predict"}[case]
    return [args[0], "--config", str(run["config"]), *args[1:]], words


@pytest.mark.parametrize("case", ["missing", "unknown mode", "class counts", "both", "bad scale", "fit"])
def test_bad_evaluation_requests_exit_2_with_one_line(run, other_classes, case):
    """Lightning's own log lines included (run_cli captures them): the message is all of stderr."""
    args, words = bad_request(case, run, other_classes)
    result = run_cli(*args)
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and words in err and "Traceback" not in err, err


# ---------------------------------------------------------------------------------------------
# exact metrics under DDP: 2 processes (gloo) on 37 images = 1 process


@pytest.fixture(scope="module")
def ddp_runs(run, tmp_path_factory):
    """`test` and `predict` under DDP (2 processes each, gloo), launched together: most of their time is
    start-up, which the two share the machine's cores for."""
    root = tmp_path_factory.mktemp("ddp")
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]
    commands = {
        "test": ["test", "--config", str(run["config"]), "--ckpt_path", str(run["ckpt"]), "--eval.crops", "ten",
                 "--eval.report_dir", str(root / "test"), *ddp],
        "predict": ["predict", "--config", str(run["config"]), "--ckpt_path", str(run["ckpt"]),
                    "--eval.report_dir", str(root / "predict"), *ddp],
    }
    procs = {name: subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True)
             for name, args in commands.items()}
    results = {}
    for name, proc in procs.items():
        try:
            _, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:  # hang guard
            for p in procs.values():
                p.kill()
            pytest.fail(f"{name} under DDP did not finish in 300 s")
        results[name] = (proc.returncode, err)
    return root, results


@pytest.mark.slow
def test_two_ddp_processes_count_every_sample_once(run, ddp_runs, tmp_path):
    root, results = ddp_runs
    code, err = results["test"]
    assert code == 0, err[-3000:]
    common = ["test", "--config", str(run["config"]), "--ckpt_path", str(run["ckpt"]), "--eval.crops", "ten"]
    assert main([*common, "--eval.report_dir", str(tmp_path / "one")]) == 0
    one, two = report(tmp_path / "one" / "test.json"), report(root / "test" / "test.json")
    assert two["world_size"] == 2 and two["samples"] == one["samples"] == 37  # no padded duplicate, no drop
    assert two["confusion"] == one["confusion"] and two["top1"] == one["top1"] and two["top5"] == one["top5"]
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5)


@pytest.mark.slow
def test_predict_under_ddp_has_one_row_per_input(ddp_runs):
    root, results = ddp_runs
    code, err = results["predict"]
    assert code == 0, err[-3000:]
    rows = list(csv.reader((root / "predict" / "predictions.csv").open()))[1:]
    assert [r[0] for r in rows] == [f"val[{i}]" for i in range(37)]


# ---------------------------------------------------------------------------------------------
# image folders: images of different aspect ratios, class names from the checkpoint


def image(path: Path, size: tuple[int, int], value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(np.clip(rng.normal(value, 30, (size[1], size[0], 3)), 0, 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory, run):
    root = tmp_path_factory.mktemp("folder")
    sizes = [(24, 16), (16, 24), (20, 20)]  # landscape, portrait, square
    for split, count in (("train", 6), ("val", 3)):
        for c, name in enumerate(("cat", "dog", "fox")):
            for i in range(count):
                image(root / "my_images" / split / name / f"{i}.png", sizes[i % 3], 40 + 80 * c)
    for i, rel in enumerate(("a.png", "sub/b.png", "sub/deeper/c.png")):
        image(root / "new_images" / rel, sizes[i], 40 + 80 * i)
    arch = root / "tiny3.yaml"
    arch.write_text(TINY.replace(f"classes: {CLASSES}", "classes: 3"))
    torch.manual_seed(0)
    data = ImageFolderDataModule(str(root / "my_images"), image_size=16, batch_size=4, train_transforms="none")
    model = ClassifierModule(str(arch), num_classes=3, input_shape=(3, 16, 16))
    trainer = L.Trainer(max_epochs=3, logger=False, enable_progress_bar=False, enable_checkpointing=False,
                        enable_model_summary=False, limit_val_batches=0)
    trainer.fit(model, data)
    trainer.save_checkpoint(root / "last.ckpt")
    return root


def test_googlenet144_on_a_folder_of_mixed_aspect_ratios(folder_run, tmp_path):
    root = folder_run
    model, _ = load_member(root / "last.ckpt", EvalConfig(crops="googlenet144", max_crops=300))
    data = ImageFolderDataModule(str(root / "my_images"), image_size=16, batch_size=4)
    module = prepare(model, data)
    assert data.eval_resize == 25  # 352/224 x 16, the largest scale
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[EvaluationReport(tmp_path)])
    result = trainer.test(module, data, verbose=False)[0]
    got = report(tmp_path / "test.json")
    assert got["samples"] == 9 and got["crops"]["per_image"] == 144
    assert [c["class"] for c in got["per_class"]] == ["cat", "dog", "fox"]
    assert got["top1"] == pytest.approx(result["test/acc"])


@pytest.mark.slow
def test_readme_predict_on_a_folder_uses_the_checkpoints_class_names(folder_run, tmp_path):
    command = "python -m pipeline predict --config lightning_config.yaml --data datamodules.ImageFolderDataModule --data.root my_images --data.predict_root new_images --model.arch architectures/resnet18.yaml --trainer.default_root_dir runs/my_images --ckpt_path last"  # noqa: E501
    # the same classes under other folder names: the labels must come from the checkpoint
    renamed = tmp_path / "renamed"
    for old, new in (("cat", "x"), ("dog", "y"), ("fox", "z")):
        for split in ("train", "val"):
            target = renamed / split / new
            target.mkdir(parents=True)
            for f in (folder_run / "my_images" / split / old).iterdir():
                (target / f.name).write_bytes(f.read_bytes())
    # `last`: the newest run's under the root, here the folder run's checkpoint placed as fit places it
    root = tmp_path / "resnet18_runs"  # stands for runs/my_images
    (root / "version_0" / "checkpoints").mkdir(parents=True)
    shutil.copy(folder_run / "last.ckpt", root / "version_0" / "checkpoints" / "last.ckpt")
    command = (command.replace("runs/my_images", str(root)).replace("my_images", str(renamed))
               .replace("new_images", str(folder_run / "new_images")))
    # on the tiny net and images the checkpoint was trained with, so that it runs in seconds
    assert main([*shlex.split(command)[3:], "--model.arch", str(folder_run / "tiny3.yaml"), "--data.image_size", "16",
                 "--trainer.enable_progress_bar", "false"]) == 0
    assert sorted(p.name for p in root.iterdir()) == ["reports", "version_0"]
    rows = list(csv.reader((root / "reports" / "predictions.csv").open()))
    assert [r[0] for r in rows[1:]] == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    assert all({r[1], r[3], r[5]} == {"cat", "dog", "fox"} for r in rows[1:])


# ---------------------------------------------------------------------------------------------
# the README's Evaluate commands, verbatim (runs/digits moved to a temporary folder)


def readme(command: str, runs: dict[str, Path], *extra: str) -> int:
    """Run a README command in this process (no start-up cost), its run folders replaced by ``runs``."""
    for name in sorted(runs, key=len, reverse=True):  # runs/digits_seed1 before runs/digits
        command = command.replace(f"runs/{name}", str(runs[name]))
    return main([*shlex.split(command)[3:], "--trainer.enable_progress_bar", "false", *extra])


@pytest.fixture(scope="module")
def digits(digits_run, tmp_path_factory):
    """The runs the README's evaluation commands name: the main job (trained once per session, about 98%)
    and a short second run with seed 1 (two epochs: about 90%) for the ensemble."""
    runs = {"digits": digits_run, "digits_seed1": tmp_path_factory.mktemp("runs") / "digits_seed1"}
    assert readme("python -m pipeline fit --config lightning_config.yaml --seed_everything 1 --trainer.default_root_dir runs/digits_seed1",  # noqa: E501
                  runs, "--trainer.max_epochs", "2") == 0
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("command, crops", [
    ("python -m pipeline test --config lightning_config.yaml --ckpt_path runs/digits/version_0/checkpoints/last.ckpt --eval.crops ten --eval.mirror false", 5),  # noqa: E501
    ("python -m pipeline test --config lightning_config.yaml --ensemble.checkpoints '[runs/digits/version_0/checkpoints/last.ckpt,runs/digits_seed1/version_0/checkpoints/last.ckpt]' --eval.crops ten --eval.mirror false", 5),  # noqa: E501
])
def test_readme_test_commands(digits, command, crops, capsys, tmp_path):
    assert readme(command, digits, "--trainer.default_root_dir", str(tmp_path)) == 0  # the shared runs stay as they were
    got = report(tmp_path / "reports" / "test.json")
    assert got["samples"] == 360 and got["crops"]["per_image"] == crops
    assert got["top1"] >= 0.8 and len(got["checkpoints"]) == (2 if "ensemble" in command else 1)
    assert "top-1" in capsys.readouterr().out


@pytest.mark.slow
def test_readme_predict_command(digits, tmp_path):
    assert readme("python -m pipeline predict --config lightning_config.yaml --ckpt_path runs/digits/version_0/checkpoints/last.ckpt",
                  digits, "--trainer.default_root_dir", str(tmp_path)) == 0
    rows = list(csv.reader((tmp_path / "reports" / "predictions.csv").open()))
    assert len(rows) == 361 and rows[0][:3] == ["file", "label_1", "prob_1"] and len(rows[0]) == 11
