"""``GuardedCheckpoint``: keep the best epoch by the guarded score, and the latest for resuming."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class GuardedCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` whose ``last.ckpt`` follows every epoch.

    Lightning 2.6 refreshes ``last.ckpt`` only in a step that also saved a top-k checkpoint, so
    after an epoch that did not improve the score, ``--resume`` would silently go back to an
    older epoch and train it again into the same MLflow run.
    """

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        fresh = not self._should_skip_saving_checkpoint(trainer)
        if self.save_last and fresh and self._should_save_on_train_epoch_end(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
