"""Optimizers and schedulers by name, and keeping schedulers right when groups are added."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, ReduceLROnPlateau

OptimizerName = Literal["adamw", "sgd"]
SchedulerName = Literal["none", "cosine", "onecycle", "plateau"]
# Per-group keys that schedulers write at construction and read on every step.
_SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


def build_optimizer(
    name: OptimizerName, params: Iterable[torch.nn.Parameter], *, lr: float, weight_decay: float, momentum: float
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


def restart_groups_at(
    optimizer: torch.optim.Optimizer,
    schedulers: Iterable[LRScheduler | ReduceLROnPlateau],
    lr: float,
    groups_before: int,
) -> None:
    """Set every group to ``lr`` now and make schedulers follow groups added after they were built.

    Schedulers record per-group state at construction (``base_lrs``, ``min_lrs``, one-cycle's
    ``max_lr``...), so a group added later by ``add_param_group`` is skipped or crashes them.
    Existing groups are rescaled so their current rate is ``lr`` and the schedule keeps its
    shape; new groups copy group 0's (rescaled) schedule.
    """
    groups = optimizer.param_groups
    factor = lr / groups[0]["lr"] if groups[0]["lr"] > 0 else 1.0
    for group in groups[:groups_before]:
        for key in ("initial_lr", "max_lr", "min_lr"):
            if key in group:
                group[key] *= factor
    for group in groups[groups_before:]:
        for key in _SCHEDULE_KEYS:
            if key in groups[0]:
                group[key] = groups[0][key]
    for group in groups:
        group["lr"] = lr
    for scheduler in schedulers:
        if isinstance(scheduler, ReduceLROnPlateau):
            scheduler.min_lrs = scheduler.min_lrs[:groups_before]
            scheduler.min_lrs += [scheduler.min_lrs[0]] * (len(groups) - groups_before)
            continue
        base = [b * factor for b in scheduler.base_lrs[:groups_before]]
        scheduler.base_lrs = base + [base[0]] * (len(groups) - groups_before)
        scheduler._last_lr = [group["lr"] for group in groups]  # noqa: SLF001 - read by get_last_lr()
