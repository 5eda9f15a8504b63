"""``FreezeThenUnfreeze``: train the head first, then everything at a lower learning rate.

The seeds found that training all weights at once with a high rate destroys the pretrained
features; freezing the backbone first and then fine-tuning all of it slowly worked better.
"""

import logging

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import BaseFinetuning

from training.bounds import NonNegativeInt, PositiveFloat
from training.optim import restart_groups_at

log = logging.getLogger(__name__)


class FreezeThenUnfreeze(BaseFinetuning):
    """Phase 1 (epochs before ``unfreeze_at_epoch``): only ``net.head`` trains at the model's
    ``lr``. Phase 2: ``net.features`` joins as a new parameter group and every group continues at
    ``unfreeze_lr``, following the scheduler's shape from there. ``unfreeze_at_epoch: 0``
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

    def finetune_function(self, pl_module: LightningModule, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if self.unfreeze_at_epoch == 0 or epoch < self.unfreeze_at_epoch:
            return
        features = pl_module.net.features
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if all(id(p) in in_optimizer for p in features.parameters()):  # a resumed phase 2
            self.make_trainable(features)
            return
        groups_before = len(optimizer.param_groups)
        self.unfreeze_and_add_param_group(features, optimizer, lr=self.unfreeze_lr, train_bn=True)
        schedulers = [c.scheduler for c in pl_module.trainer.lr_scheduler_configs if c.scheduler.optimizer is optimizer]
        restart_groups_at(optimizer, schedulers, self.unfreeze_lr, groups_before)
        log.info(
            "epoch %d: backbone unfrozen, all %d groups at lr %g", epoch, len(optimizer.param_groups), self.unfreeze_lr
        )
