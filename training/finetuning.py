"""``FreezeThenUnfreeze``: train the head first, then everything at a lower learning rate.

The seeds found that training all weights at once with a high rate destroys the pretrained
features; freezing the backbone first and then fine-tuning all of it slowly worked better.
"""

import logging

import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BaseFinetuning
from torch.optim import Optimizer

from training.bounds import NonNegativeInt, PositiveFloat
from training.optim import restart_at

log = logging.getLogger(__name__)


class FreezeThenUnfreeze(BaseFinetuning):
    """Phase 1 (epochs before ``unfreeze_at_epoch``): only ``net.head`` trains, at the optimizer's ``lr``;
    ``net.features`` is frozen, though its parameters are in the optimizer from the start (a group of
    their own, skipped while they have no gradients). Phase 2: the backbone trains too, and every group
    continues at ``unfreeze_lr``, following the scheduler's shape from there. ``unfreeze_at_epoch: 0``
    trains everything from the start (the MLP has no pretrained features to protect).
    """

    def __init__(
        self, unfreeze_at_epoch: NonNegativeInt = 1, unfreeze_lr: PositiveFloat = 1e-4, train_bn: bool = False
    ) -> None:
        super().__init__()
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.unfreeze_lr = unfreeze_lr
        self.train_bn = train_bn

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        if self.unfreeze_at_epoch > 0:
            self.freeze(pl_module.net.features, train_bn=self.train_bn)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer) -> None:
        """Averages the unfrozen backbone's gradients over the processes. DDP wraps the model after
        ``setup`` froze it and reduces only what required gradients then, so each process stepped its
        backbone on its own batches and the replicas drifted apart (Lightning issue 20340). One
        collective per optimizer step, after any gradient accumulation and before clipping."""
        if trainer.world_size < 2 or self.unfreeze_at_epoch == 0:
            return
        # a parameter without a gradient is unused by the model's forward, on every process alike
        grads = [p.grad for p in pl_module.net.features.parameters() if p.requires_grad and p.grad is not None]
        if not grads:  # phase 1: the backbone is frozen
            return
        flat = trainer.strategy.reduce(torch.cat([g.reshape(-1) for g in grads]), reduce_op="mean")
        for grad, mean in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            grad.copy_(mean.view_as(grad))

    def finetune_function(self, pl_module: LightningModule, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if self.unfreeze_at_epoch == 0 or epoch < self.unfreeze_at_epoch:
            return
        self.make_trainable(pl_module.net.features)
        if epoch > self.unfreeze_at_epoch:  # a fit resumed in phase 2: the optimizer's rates came back with it
            return
        restart_at(optimizer, self.unfreeze_lr)
        log.info(
            "epoch %d: backbone unfrozen, all %d groups at lr %g", epoch, len(optimizer.param_groups), self.unfreeze_lr
        )
