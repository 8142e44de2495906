"""The weight initialisation schemes a file picks with ``init:``."""
from __future__ import annotations

from torch import nn


def _kaiming(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, 0, 0.01)
        nn.init.zeros_(module.bias) if module.bias is not None else None


def _trunc_normal(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.01, a=-2, b=2)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _xavier(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


# `init:` in a file. Norm layers always start at weight 1, bias 0 (their PyTorch default).
INIT_SCHEMES = {
    "default": lambda module: None,  # PyTorch's per-layer defaults
    "kaiming": _kaiming,  # He et al.; torchvision's ResNet, DenseNet, MobileNet
    "trunc_normal": _trunc_normal,  # torchvision's GoogLeNet
    "xavier": _xavier,  # Glorot & Bengio; LeNet/AlexNet era
}
