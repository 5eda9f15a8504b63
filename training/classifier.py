"""``MhistClassifier``: one LightningModule for the ViT and the MLP.

Reads top to bottom: init, forward, the shared step, train/val/test, optimizers. The network is
injected (``training.networks``); facts that come from the data (class balance, normalization)
are adopted in ``setup`` and kept in buffers, so a checkpoint carries everything export needs.
"""

import warnings
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR
from torchmetrics import CatMetric

from inference.metrics import binary_metrics
from training.bounds import ClosedFraction, PositiveFloat, PositiveFraction
from training.errors import TrainingSetupError
from training.optim import ScheduleCallable, checked, lightning_schedule
from training.selection import guarded_sensitivity
from training.thresholds import ThresholdStrategy, choose_threshold
from training.transforms import IMAGENET_MEAN, IMAGENET_STD

TRAINING_THRESHOLD = 0.5  # metrics during training, and the guarded score, use the fixed 0.5


class MhistClassifier(LightningModule):
    """Binary HP (0) vs SSA (1) classifier trained with BCE-with-logits."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: OptimizerCallable = torch.optim.AdamW,
        scheduler: ScheduleCallable | None = CosineAnnealingLR,
        pos_weight: PositiveFloat | Literal["auto"] | None = "auto",
        min_auroc: ClosedFraction = 0.75,
        min_balanced_accuracy: ClosedFraction = 0.65,
        threshold_strategy: ThresholdStrategy = "target_sensitivity",
        target_sensitivity: PositiveFraction = 0.9,
        f_beta: PositiveFloat = 2.0,
    ) -> None:
        """``optimizer``: a ``torch.optim`` class and its arguments; ``scheduler``: a schedule called with the
        optimizer and the fit's total steps (``training.optim``), or none. ``pos_weight="auto"`` takes the
        data module's value (negatives per positive)."""
        super().__init__()
        if problem := checked(optimizer, scheduler):
            raise TrainingSetupError(problem)
        with warnings.catch_warnings():  # Lightning's advice to ignore a module: done just below
            warnings.filterwarnings("ignore", "Attribute 'net' is an instance of `nn.Module`")
            self.save_hyperparameters()  # under LightningCLI, each argument is saved as its config...
        # ...built in Python, a network, class or partial is no hyperparameter: the weights carry the network,
        # and torch.load (weights_only) would refuse the checkpoint holding an optimizer class
        self.remove_ignored_hparams(
            [name for name in ("net", "optimizer", "scheduler") if callable(self.hparams.get(name))]
        )
        self.net = net
        self.optimizer, self.scheduler = optimizer, scheduler
        self.register_buffer("loss_pos_weight", torch.tensor(1.0))
        self.register_buffer("decision_threshold", torch.tensor(TRAINING_THRESHOLD))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN))
        self.register_buffer("std", torch.tensor(IMAGENET_STD))
        self.outputs = nn.ModuleDict(
            {f"{stage}_{kind}": CatMetric() for stage in ("train", "val", "test") for kind in ("probs", "targets")}
        )

    @property
    def model_name(self) -> str:
        return getattr(self.net, "model_name", type(self.net).__name__)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        mean, std = datamodule.normalization
        size = datamodule.input_size  # the model summary's FLOPs and shapes (else "FLOPs: 0")
        expected = getattr(self.net, "input_size", None)
        if expected is not None and expected != size:  # else a shape error deep in the first step
            raise TrainingSetupError(
                f"data.input_size is {size} but {self.model_name} takes {expected}x{expected} images: set both to "
                "the same size (model.net.init_args.input_size, or img_size in model.net.init_args.model_kwargs)"
            )
        self.example_input_array = torch.zeros(1, 3, size, size)
        self.mean.copy_(torch.tensor(mean))
        self.std.copy_(torch.tensor(std))
        weight = datamodule.pos_weight if self.hparams.pos_weight == "auto" else self.hparams.pos_weight
        self.loss_pos_weight.fill_(1.0 if weight is None else float(weight))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``[batch]``."""
        return self.net(images)

    def model_step(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Loss against the targets (a 0/1 label, or the SSA votes / 7 with ``data.targets: votes``);
        the metrics against the majority label, which is SSA exactly when the target is at least 0.5."""
        images, targets = batch
        logits = self(images)
        loss = F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=self.loss_pos_weight)
        return loss, torch.sigmoid(logits.detach().float()), (targets >= 0.5).long()

    def _collect(self, stage: str, probs: torch.Tensor, targets: torch.Tensor) -> None:
        self.outputs[f"{stage}_probs"].update(probs)
        self.outputs[f"{stage}_targets"].update(targets.float())

    def _gathered(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        probs, targets = self.outputs[f"{stage}_probs"], self.outputs[f"{stage}_targets"]
        result = probs.compute().float().cpu().numpy(), targets.compute().long().cpu().numpy()
        probs.reset()
        targets.reset()
        return result

    def _log_metrics(self, prefix: str, metrics: dict[str, float]) -> None:
        self.log_dict({f"{prefix}/{k}": float(v) for k, v in metrics.items()}, sync_dist=True)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss, probs, targets = self.model_step(batch)
        self._collect("train", probs, targets)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=targets.numel())
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_metrics("train", binary_metrics(*self._gathered("train"), TRAINING_THRESHOLD))

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, probs, targets = self.model_step(batch)
        self._collect("val", probs, targets)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, sync_dist=True, batch_size=targets.numel())

    def on_validation_epoch_end(self) -> None:
        """Log metrics at 0.5, the guarded score, and tune the threshold for these weights."""
        probs, targets = self._gathered("val")
        metrics = binary_metrics(probs, targets, TRAINING_THRESHOLD)
        metrics["guarded_score"] = guarded_sensitivity(
            metrics["sensitivity"],
            metrics["auroc"],
            metrics["balanced_accuracy"],
            min_auroc=self.hparams.min_auroc,
            min_balanced_accuracy=self.hparams.min_balanced_accuracy,
        )
        if not self.trainer.sanity_checking and 0 < int(targets.sum()) < targets.size:
            self.decision_threshold.fill_(self.tune_threshold(probs, targets))
            metrics["threshold"] = float(self.decision_threshold)
            self._log_metrics("val_tuned", binary_metrics(probs, targets, float(self.decision_threshold)))
        self._log_metrics("val", metrics)

    def tune_threshold(self, probs: np.ndarray, targets: np.ndarray) -> float:
        """The configured strategy's threshold on validation probabilities (each epoch, and after calibration)."""
        return choose_threshold(
            probs,
            targets,
            self.hparams.threshold_strategy,
            target_sensitivity=self.hparams.target_sensitivity,
            beta=self.hparams.f_beta,
        )

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        loss, probs, targets = self.model_step(batch)
        self._collect("test", probs, targets)
        self.log("test/loss", loss, on_epoch=True, sync_dist=True, batch_size=targets.numel())

    def on_test_epoch_end(self) -> None:
        """Test metrics at 0.5 and at the threshold tuned on validation (never on test)."""
        probs, targets = self._gathered("test")
        self._log_metrics("test", binary_metrics(probs, targets, TRAINING_THRESHOLD))
        tuned = binary_metrics(probs, targets, float(self.decision_threshold))
        self._log_metrics("test_tuned", {**tuned, "threshold": float(self.decision_threshold)})

    def predict_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.sigmoid(self(images).float())

    def configure_optimizers(self) -> dict:
        """Every parameter, the backbone's (``net.features``) in a second group: frozen in phase 1, they get
        no gradient and the optimizer skips them, and no scheduler meets a group added after it was built."""
        backbone = {id(p) for p in self.net.features.parameters()} if hasattr(self.net, "features") else set()
        params = list(self.parameters())  # the groups are named: the monitor logs lr-<optimizer>/head, /backbone
        head = {"params": [p for p in params if id(p) not in backbone], "name": "head" if backbone else "all"}
        groups = (
            [head, {"params": [p for p in params if id(p) in backbone], "name": "backbone"}] if backbone else [head]
        )
        optimizer = self.optimizer(groups)
        if self.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = self.scheduler(optimizer, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": lightning_schedule(scheduler)}
