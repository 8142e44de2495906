"""Export the inference graph (eval mode, no auxiliary branches) to ONNX or TorchScript."""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from pathlib import Path

import torch

from .errors import ArchError
from .language import GraphNet


def net_weights(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """The net's tensors from a state dict or a training checkpoint's ``state_dict``, and which they are.

    A checkpoint of ``fit`` holds the net under ``net.``, and with ``--model.ema_decay`` also the
    average under ``ema.module.``, which is what evaluation uses: it is taken when present.
    """
    for prefix, what in (("ema.module.", "EMA weights"), ("net.", "weights")):
        found = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if found:
            return found, what
    return state, "weights"


def inference_model(model: GraphNet) -> GraphNet:
    """The eval-mode network with auxiliary-only nodes removed, so they are not even stored."""
    return model.without_aux().eval()


def export(model: GraphNet, fmt: str, path: str | Path, batch: int = 1) -> Path:
    """Write ``model`` as ``onnx`` (dynamic batch axis) or ``torchscript``; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = inference_model(model)
    example = torch.randn(batch, *net.input_shape)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' deprecation notices are not the user's concern
        if fmt == "onnx":
            _onnx(net, example, path)
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(net, example), str(path))
        else:
            raise ArchError(f"unknown export format '{fmt}'; expected onnx or torchscript")
    return path


@contextlib.contextmanager
def _no_native_stdout():
    """Hold back what C++ code writes to the process's stdout (the exporter dumps its whole graph there
    when it fails): file descriptor 1 points at devnull meanwhile."""
    if sys.stdout is not None:
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 at all (started with stdout closed): nothing to hold back
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _onnx(net: GraphNet, example: torch.Tensor, path: Path) -> None:
    # The TorchScript-based exporter needs the onnx package only (the dynamo one needs onnxscript too).
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ArchError("export --format onnx needs the onnx package: pip install -e \".[export]\" "
                        "(or pip install onnx); --format torchscript needs nothing more") from None
    try:
        with _no_native_stdout():
            torch.onnx.export(net, (example,), str(path), dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              dynamo=False, input_names=["input"], output_names=["logits"], opset_version=17)
    except (torch.onnx.errors.UnsupportedOperatorError, torch.onnx.errors.SymbolicValueError) as err:
        # an operator (or an operator's arguments) ONNX cannot express at this input
        reason = str(err).splitlines()[0].split(". Please")[0].split("  [Caused")[0]
        hint = ""
        if "adaptive" in reason:
            hint = ("; an adaptive pool exports only where its output size divides its input's: export at the "
                    "file's own input size or a multiple of it")
        shape = "x".join(map(str, example.shape[1:]))
        raise ArchError(f"ONNX cannot express this net at input {shape}: {reason}{hint}") from None
