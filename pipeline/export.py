"""Export the inference graph (eval mode, no auxiliary branches) to ONNX or TorchScript."""
from __future__ import annotations

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
            # The TorchScript-based exporter needs no extra package (the dynamo one needs onnxscript).
            torch.onnx.export(net, (example,), str(path), dynamo=False, input_names=["input"],
                              output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=17)
        elif fmt == "torchscript":
            torch.jit.save(torch.jit.trace(net, example), str(path))
        else:
            raise ArchError(f"unknown export format '{fmt}'; expected onnx or torchscript")
    return path
