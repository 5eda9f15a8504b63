"""What ``model.optimizer`` and ``model.scheduler`` take, the schedules that need the fit's length, and
restarting every group at a new rate mid-schedule.

The optimizer is any ``torch.optim`` class (Lightning's ``OptimizerCallable``), given the parameter
groups. A schedule is any class called with the optimizer and the fit's total optimizer steps, the
one number a config cannot know (it depends on the data, the batch size and the devices):
``torch.optim.lr_scheduler.CosineAnnealingLR`` takes it as ``T_max`` itself; ``OneCycle`` and
``Plateau`` here adapt the other two schedules the seeds used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, OneCycleLR, ReduceLROnPlateau

ScheduleCallable = Callable[[Optimizer, int], LRScheduler | ReduceLROnPlateau]
# Per-group keys that schedulers write at construction and read on every step.
_SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")


class OneCycle(OneCycleLR):
    """One cycle over the whole fit, peaking at each group's ``lr`` (the optimizer's). Torch checks the
    arguments (``model.optimizer``'s and these are tried when the model is built)."""

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        pct_start: float = 0.3,
        anneal_strategy: Literal["cos", "linear"] = "cos",
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ) -> None:
        super().__init__(
            optimizer,
            max_lr=[group["lr"] for group in optimizer.param_groups],
            total_steps=max(total_steps, 2),
            pct_start=pct_start,
            anneal_strategy=anneal_strategy,
            div_factor=div_factor,
            final_div_factor=final_div_factor,
        )


class Plateau(ReduceLROnPlateau):
    """The rate times ``factor`` when ``monitor`` stops improving for ``patience`` epochs. It follows
    epochs, so the fit's length is not needed."""

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        monitor: str = "val/loss",
        mode: Literal["min", "max"] = "min",
        factor: float = 0.5,
        patience: int = 2,
    ) -> None:
        super().__init__(optimizer, mode=mode, factor=factor, patience=patience)
        self.monitor = monitor


def lightning_schedule(scheduler: LRScheduler | ReduceLROnPlateau) -> dict:
    """A Lightning ``lr_scheduler`` config: a plateau per epoch on its monitor, anything else per step."""
    if isinstance(scheduler, ReduceLROnPlateau):
        return {"scheduler": scheduler, "interval": "epoch", "monitor": getattr(scheduler, "monitor", "val/loss")}
    return {"scheduler": scheduler, "interval": "step"}


def checked(optimizer: OptimizerCallable, scheduler: ScheduleCallable | None) -> str | None:
    """What torch refuses in the configured optimizer or schedule (a negative rate, a momentum SGD
    without one...), tried on one dummy parameter so that a fit fails before the data loads."""
    try:
        probe = optimizer([torch.zeros(1, requires_grad=True)])
    except (TypeError, ValueError) as error:
        return f"model.optimizer: {error}"
    try:
        if scheduler is not None:
            scheduler(probe, 10)
    except (TypeError, ValueError) as error:
        return f"model.scheduler: {error}"
    return None


def restart_at(optimizer: Optimizer, lr: float) -> None:
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
