import pytest
import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from tests.helpers import cpu_trainer, tiny_classifier
from training.cli import CHECKPOINT_DEFAULTS, LATEST_DEFAULTS
from training.datamodule import MhistDataModule
from training.selection import guarded_sensitivity

FLOORS = {"min_auroc": 0.8, "min_balanced_accuracy": 0.7}
# (sensitivity, auroc, balanced accuracy) per epoch, as the seeds saw them: sensitivity can
# soar while the balanced metrics collapse to chance.
SCRIPT = [
    (0.60, 0.85, 0.75),  # passes: 0.60
    (0.98, 0.62, 0.52),  # "everything is SSA": fails both guards
    (0.85, 0.88, 0.78),  # passes: 0.85 <- the one to keep
    (0.90, 0.79, 0.80),  # AUROC just under its floor
    (0.80, 0.91, 0.82),  # passes: 0.80, best AUROC but less sensitive
]


def test_guarded_score_orders_epochs() -> None:
    scores = [guarded_sensitivity(*row, **FLOORS) for row in SCRIPT]
    assert scores[0] == 0.60
    assert scores[1] == pytest.approx(-(0.18 + 0.18))
    assert scores[3] == pytest.approx(-0.01)
    assert max(range(5), key=scores.__getitem__) == 2


class Scripted(LightningModule):
    """Logs the guarded score of a scripted metric sequence, one row per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: object, batch_idx: int) -> torch.Tensor:
        return (self.weight - 1).pow(2).sum()

    def validation_step(self, batch: object, batch_idx: int) -> None:
        pass

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.log("val/guarded_score", guarded_sensitivity(*SCRIPT[self.current_epoch], **FLOORS))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_checkpoint_callback_keeps_the_best_guarded_epoch(tmp_path) -> None:
    loader = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=2)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, **CHECKPOINT_DEFAULTS)
    latest = ModelCheckpoint(dirpath=tmp_path, **LATEST_DEFAULTS)
    trainer = cpu_trainer(
        tmp_path,
        max_epochs=len(SCRIPT),
        callbacks=[checkpoint, latest],
        enable_checkpointing=True,
        num_sanity_val_steps=0,
    )
    trainer.fit(Scripted(), loader, loader)
    assert trainer.checkpoint_callback is checkpoint
    assert checkpoint.best_model_path.endswith("epoch02-score0.8500.ckpt")
    assert torch.load(checkpoint.best_model_path, weights_only=False)["epoch"] == 2
    # last.ckpt follows every epoch, those that did not improve the score too: --resume starts after the last
    assert sorted(p.name for p in tmp_path.glob("last*.ckpt")) == ["last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=False)["epoch"] == len(SCRIPT) - 1


class WatchedData(MhistDataModule):
    """Counts reads of the test partition."""

    test_reads = 0

    def test_dataloader(self) -> DataLoader:
        type(self).test_reads += 1
        return super().test_dataloader()


def test_fit_never_reads_the_test_partition(tmp_path, small_root) -> None:
    """Checkpoint choice, threshold tuning and early stopping all happen inside fit."""
    data = WatchedData(str(small_root), batch_size=16, num_workers=0, normalization="imagenet")
    model = tiny_classifier(size=224)
    checkpoint = ModelCheckpoint(dirpath=tmp_path, **CHECKPOINT_DEFAULTS)
    stopper = EarlyStopping(monitor="val/loss", patience=1)
    trainer = cpu_trainer(tmp_path, max_epochs=3, callbacks=[checkpoint, stopper], enable_checkpointing=True)
    trainer.fit(model, datamodule=data)
    assert checkpoint.best_model_path
    assert float(model.decision_threshold) != 0.5  # tuned, on validation
    assert WatchedData.test_reads == 0
    trainer.test(model, datamodule=data, ckpt_path="best")
    assert WatchedData.test_reads == 1
