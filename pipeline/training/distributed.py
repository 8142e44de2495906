"""Data-parallel training helpers: SyncBatchNorm that also runs on CPUs (gloo), and the learning-rate
scaling rule for large global batches."""
from __future__ import annotations

import torch
import torch.distributed as dist
from lightning.pytorch.plugins.layer_sync import TorchSyncBatchNorm
from torch import nn


class _SyncBatchNormCPU(torch.autograd.Function):
    """Batch norm whose statistics are those of the global batch (all ranks), with plain collectives.

    PyTorch's SyncBatchNorm runs on GPUs only; this is the same computation for CPU tensors: the
    mean and variance of the union of the ranks' batches (combined exactly from each rank's count,
    mean and sum of squared deviations), and in backward the sums of dy and dy * x_hat over all ranks.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = xf.numel() // xf.size(1)
        mean = xf.mean(dims)
        m2 = ((xf - mean.view(shape)) ** 2).sum(dims)
        local = torch.cat([torch.tensor([float(count)]), mean, m2])
        world = dist.get_world_size(group)
        gathered = [torch.empty_like(local) for _ in range(world)]
        dist.all_gather(gathered, local, group=group)
        stats = torch.stack(gathered)  # (world, 1 + 2C): count, mean, M2 of each rank
        counts, means, m2s = stats[:, :1], stats[:, 1:1 + mean.numel()], stats[:, 1 + mean.numel():]
        total = counts.sum()
        global_mean = (counts * means).sum(0) / total
        global_m2 = (m2s + counts * (means - global_mean) ** 2).sum(0)  # Chan et al.'s parallel variance
        invstd = torch.rsqrt(global_m2 / total + eps)
        if running_mean is not None:
            with torch.no_grad():
                running_mean.mul_(1 - momentum).add_(momentum * global_mean)
                running_var.mul_(1 - momentum).add_(momentum * global_m2 / max(float(total) - 1, 1.0))
        x_hat = (xf - global_mean.view(shape)) * invstd.view(shape)
        out = x_hat
        if weight is not None:
            out = out * weight.float().view(shape) + bias.float().view(shape)
        ctx.save_for_backward(x_hat, invstd, weight)
        ctx.group, ctx.total = group, float(total)
        return out.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, invstd, weight = ctx.saved_tensors
        dims = [0, *range(2, grad_out.dim())]
        shape = [1, -1] + [1] * (grad_out.dim() - 2)
        dy = grad_out.float()
        sum_dy, sum_dy_xhat = dy.sum(dims), (dy * x_hat).sum(dims)
        # weight and bias: this rank's share; DDP averages parameter gradients across ranks
        grad_weight = sum_dy_xhat.to(weight.dtype) if weight is not None else None
        grad_bias = sum_dy.to(weight.dtype) if weight is not None else None
        sums = torch.cat([sum_dy, sum_dy_xhat])
        dist.all_reduce(sums, group=ctx.group)
        global_dy, global_dy_xhat = sums.chunk(2)
        scale = invstd if weight is None else invstd * weight.float()
        grad_in = (dy - (global_dy / ctx.total).view(shape) - x_hat * (global_dy_xhat / ctx.total).view(shape))
        grad_in = grad_in * scale.view(shape)
        return grad_in.to(grad_out.dtype), grad_weight, grad_bias, None, None, None, None, None


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm over the global batch, for 1-D, 2-D and 3-D inputs, on GPUs and CPUs.

    On GPUs it runs PyTorch's SyncBatchNorm kernels; on CPUs the same computation with plain
    collectives (gloo). It is not a ``torch.nn.SyncBatchNorm``, which DDP refuses on CPU modules.
    With one process, or in eval mode, it is an ordinary BatchNorm.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, process_group=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        self.process_group = process_group

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input (N, C, ...), got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        distributed = self.training and dist.is_available() and dist.is_initialized()
        group = (self.process_group or dist.group.WORLD) if distributed else None
        if not distributed or dist.get_world_size(group) == 1:
            return super().forward(input)
        self._check_input_dim(input)
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked)
        tracked = self.track_running_stats
        args = (input, self.weight, self.bias, self.running_mean if tracked else None,
                self.running_var if tracked else None, self.eps, momentum, group)
        if input.device.type == "cpu":
            return _SyncBatchNormCPU.apply(*args)
        from torch.nn.modules._functions import SyncBatchNorm as sync_batch_norm  # what nn.SyncBatchNorm runs

        return sync_batch_norm.apply(*args, dist.get_world_size(group))


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d/3d by :class:`SyncBatchNorm`, sharing its parameters and buffers.

    Exact types only: a subclass that adds behaviour (timm's BatchNormAct2d) is left as it is rather
    than silently losing it. Graph nodes look their modules up by name, so replacing works anywhere.
    """
    if type(module) in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        sync = SyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                             module.track_running_stats)
        if module.affine:
            sync.weight, sync.bias = module.weight, module.bias
        if module.track_running_stats:
            sync.running_mean, sync.running_var = module.running_mean, module.running_var
            sync.num_batches_tracked = module.num_batches_tracked
        return sync.train(module.training)
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child)
        if converted is not child:
            module.add_module(name, converted)
    return module


class SyncBatchNormPlugin(TorchSyncBatchNorm):
    """What ``--trainer.sync_batchnorm true`` applies (the CLI swaps it in for Lightning's): batch
    statistics over the global batch on GPUs and CPUs."""

    def apply(self, model: nn.Module) -> nn.Module:
        return convert_sync_batchnorm(model)
