"""Optimizers and schedulers by name, and restarting every group at a new rate mid-schedule."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, OneCycleLR, ReduceLROnPlateau

OptimizerName = Literal["adamw", "sgd"]
SchedulerName = Literal["none", "cosine", "onecycle", "plateau"]
# Per-group keys that schedulers write at construction and read on every step.
_SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


def build_optimizer(
    name: OptimizerName,
    params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    momentum: float,
) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=momentum > 0)
    raise ValueError(f"unknown optimizer {name!r}; choose adamw or sgd")


def build_scheduler(
    name: SchedulerName, optimizer: torch.optim.Optimizer, *, total_steps: int, monitor: str
) -> dict[str, Any] | None:
    """A Lightning ``lr_scheduler`` config: cosine and one-cycle per step, plateau per epoch."""
    if name == "none":
        return None
    if name == "cosine":
        return {"scheduler": CosineAnnealingLR(optimizer, T_max=max(total_steps, 1)), "interval": "step"}
    if name == "onecycle":
        max_lr = [group["lr"] for group in optimizer.param_groups]
        return {"scheduler": OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(total_steps, 2)), "interval": "step"}
    if name == "plateau":
        scheduler = ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
        return {"scheduler": scheduler, "interval": "epoch", "monitor": monitor}
    raise ValueError(f"unknown scheduler {name!r}; choose none, cosine, onecycle or plateau")


def restart_at(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Every group at ``lr`` from now on, the schedule keeping its shape.

    The groups' schedule keys (one-cycle's ``initial_lr``, ``max_lr``...) are rescaled so that group 0's
    current rate becomes ``lr``, and every other group takes group 0's. Schedulers read the groups'
    rates and keys at each step; every group was there when they were built (``configure_optimizers``).
    """
    groups = optimizer.param_groups
    factor = lr / groups[0]["lr"] if groups[0]["lr"] > 0 else 1.0
    for key in ("initial_lr", "max_lr", "min_lr"):
        if key in groups[0]:
            groups[0][key] *= factor
    for group in groups:
        for key in _SCHEDULE_KEYS:
            if key in groups[0]:
                group[key] = groups[0][key]
        group["lr"] = lr
