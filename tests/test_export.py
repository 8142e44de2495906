"""`python -m pipeline export`: ONNX (run with onnxruntime) and TorchScript give the PyTorch logits."""
from __future__ import annotations

from pathlib import Path

import sys

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from pipeline import build_model
from pipeline.convert import save_atomic

from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
GOOGLENET = ROOT / "architectures" / "googlenet.yaml"


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(GOOGLENET, input_shape=(3, 64, 64), classes=10)
    path = tmp_path_factory.mktemp("w") / "googlenet.pt"
    save_atomic(model.state_dict(), path)
    return path, model.eval()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_matches_pytorch_and_drops_aux_heads(fmt, weights, tmp_path):
    path, model = weights
    out = tmp_path / f"net.{fmt}"
    proc = run_cli("export", str(GOOGLENET), "--weights", str(path), "--format", fmt, "-o", str(out), "--input",
                   "3,64,64", "--var", "classes=10")
    assert proc.returncode == 0, proc.stderr
    x = torch.randn(3, 3, 64, 64)  # batch 3: the batch dimension is dynamic
    with torch.no_grad():
        expected = model(x).numpy()
    if fmt == "onnx":
        graph = onnx.load(str(out)).graph
        assert not [i.name for i in graph.initializer if "aux" in i.name]
        actual = onnxruntime.InferenceSession(str(out)).run(None, {"input": x.numpy()})[0]
    else:
        loaded = torch.jit.load(str(out))
        assert not [k for k in loaded.state_dict() if k.startswith("aux")]
        actual = loaded(x).detach().numpy()
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


@pytest.mark.slow
def test_readme_import_then_export_commands(tmp_path):
    """The README's two commands, verbatim, in a folder that has the zoo and (offline) a local .pth."""
    (tmp_path / "architectures").symlink_to(ROOT / "architectures")
    import torchvision

    run = lambda command, *extra: run_cli(*command.split()[3:], *extra, cwd=tmp_path)  # noqa: E731
    imported = run("python -m pipeline import-weights torchvision:resnet50 architectures/resnet50.yaml -o resnet50.pt")
    if imported.returncode != 0:  # offline: the one-line error says how to proceed; do that
        assert imported.returncode == 2 and "--from-file" in imported.stderr
        torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50.pth")
        imported = run("python -m pipeline import-weights torchvision:resnet50 architectures/resnet50.yaml -o resnet50.pt",
                       "--from-file", "resnet50.pth")
    assert imported.returncode == 0, imported.stderr
    exported = run("python -m pipeline export architectures/resnet50.yaml --weights resnet50.pt --format onnx -o resnet50.onnx")
    assert exported.returncode == 0, exported.stderr
    session = onnxruntime.InferenceSession(str(tmp_path / "resnet50.onnx"))
    assert session.run(None, {"input": np.zeros((1, 3, 224, 224), np.float32)})[0].shape == (1, 1000)


def test_onnx_export_of_channel_layer_norm_and_pointwise_convs(tmp_path):
    # ConvNeXt's pattern: a channel layer norm moves channels last and back (once written with a
    # negative dim, which onnxruntime refused to load), with 1x1 convs after it
    from pipeline.export import export

    spec = tmp_path / "cn.yaml"
    spec.write_text("name: cn\ninput: [3, 16, 16]\nnodes:\n"
                    "  stem: {block: conv, out: 8, kernel: 3, norm: layer2d, act: none}\n"
                    "  pw1: {block: conv, out: 32, kernel: 1, norm: none, act: gelu}\n"
                    "  pw2: {block: conv, out: 8, kernel: 1, norm: layer2d, act: none}\n"
                    "  pool: global_pool\n  fc: {block: linear, out: 5}\n")
    torch.manual_seed(0)
    model = build_model(spec).eval()
    out = export(model, "onnx", tmp_path / "cn.onnx")
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        expected = model(x).numpy()
    actual = onnxruntime.InferenceSession(str(out)).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_an_operator_onnx_cannot_express_is_one_line_and_exit_2(tmp_path, capfd):
    # an adaptive pool to 3x3 from a 4x4 map: the exporter refuses (and dumps its graph on the native stdout)
    spec = tmp_path / "ap.yaml"
    spec.write_text("name: ap\ninput: [3, 4, 4]\nnodes:\n  a: {block: conv, out: 4}\n"
                    "  p: {block: adaptive_pool, size: 3}\n  f: flatten\n  fc: {block: linear, out: 2}\n")
    result = run_cli("export", str(spec), "--format", "onnx", "-o", str(tmp_path / "ap.onnx"))
    err = result.stderr.strip()
    assert result.returncode == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "ONNX cannot express this net at input 3x4x4" in err and "adaptive pool" in err
    assert "graph" not in capfd.readouterr().out and not (tmp_path / "ap.onnx").exists()


def test_onnx_export_without_the_onnx_package_says_what_to_install(tmp_path, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx fails, as without the export extra
    assert main(["export", str(ROOT / "architectures" / "lenet5.yaml"), "--format", "onnx", "-o", str(tmp_path / "n.onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and 'pip install -e ".[export]"' in err
    assert not (tmp_path / "n.onnx").exists()


def test_export_at_an_input_that_cannot_fit_is_refused_before_allocating(tmp_path, capsys):
    from pipeline.cli import main

    rc = main(["export", str(ROOT / "architectures" / "resnet18.yaml"), "--format", "onnx", "-o",
               str(tmp_path / "n.onnx"), "--input", "3,1000000,1000000"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "needs at least" in err and "GB available" in err and err.count("\n") == 0, err
