"""``MhistDataModule``: the published MHIST layout, a stratified validation split, balance."""

import logging
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler
from torchvision.transforms import v2

from inference.annotations import ANNOTATORS
from training.bounds import ImageSide, NonNegativeFloat, NonNegativeInt, OpenFraction, PositiveInt
from training.errors import TrainingSetupError
from training.mhist import MhistRecord, check_images, load_rgb, read_annotations
from training.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    NetworkInput,
    eval_transform,
    train_transform,
    untrained_input,
)

log = logging.getLogger(__name__)

Normalization = Literal["pretrained", "imagenet", "dataset"]
Resize = Literal["pretrained", "nearest", "bilinear", "bicubic", "lanczos"]
Targets = Literal["majority", "votes"]
Balance = Literal["pos_weight", "sampler", "none"]


class MhistImages(Dataset):
    """(image tensor, target) pairs for a list of records: the majority label (0 or 1) or, with
    ``soft_targets``, the share of the 7 pathologists who chose SSA."""

    def __init__(
        self, root: Path, records: Sequence[MhistRecord], transform: Callable, *, soft_targets: bool = False
    ) -> None:
        self.images = root / "images"
        self.records = list(records)
        self.transform = transform
        self.soft_targets = soft_targets

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | float]:
        record = self.records[index]
        target = record.annotators_ssa / ANNOTATORS if self.soft_targets else record.label
        return self.transform(load_rgb(self.images / record.image)), target


def stratified_split(labels: Sequence[int], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices (train, validation) with each class split in the same proportion, seeded."""
    rng = np.random.default_rng(seed)
    labels_array = np.asarray(labels)
    train, val = [], []
    for label in np.unique(labels_array):
        indices = np.flatnonzero(labels_array == label)
        rng.shuffle(indices)
        n_val = max(1, round(len(indices) * fraction))
        if n_val >= len(indices):
            raise TrainingSetupError(f"class {label} has {len(indices)} images: too few for a validation split")
        val += indices[:n_val].tolist()
        train += indices[n_val:].tolist()
    return sorted(train), sorted(val)


class MhistDataModule(LightningDataModule):
    """MHIST folder -> train/val/test loaders. The test partition is only ever evaluated.

    Size, normalization and resize interpolation are the network's own (``network_input``, which
    ``MhistCLI`` links from the model) unless set here: ``normalization: pretrained`` takes the mean
    and std of the backbone's pretraining, ``dataset`` measures them on the train split.
    ``targets: votes`` trains on soft targets (SSA votes / 7); validation and test keep the majority
    label. ``description`` says what the images are, for the model card.
    """

    def __init__(
        self,
        root: str,
        batch_size: PositiveInt = 32,
        val_fraction: OpenFraction = 0.2,
        seed: int = 42,
        num_workers: NonNegativeInt = 4,
        input_size: ImageSide | None = None,
        normalization: Normalization = "pretrained",
        interpolation: Resize = "pretrained",
        network_input: NetworkInput | None = None,
        balance: Balance = "pos_weight",
        targets: Targets = "majority",
        description: str = "MHIST (Wei et al., 2021): colorectal polyp H&E patches, 224x224",
        quarter_turns: bool = True,
        flips: bool = True,
        color_jitter: NonNegativeFloat = 0.0,
        verify_images: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.root = Path(root).expanduser()

    @cached_property
    def records(self) -> list[MhistRecord]:
        records = read_annotations(self.root)
        if self.hparams.verify_images:
            check_images(self.root, records)
        return records

    @cached_property
    def splits(self) -> dict[str, list[MhistRecord]]:
        """Train/val carved from the ``train`` partition, test is the ``test`` partition."""
        train_all = [r for r in self.records if r.partition == "train"]
        if not train_all:
            raise TrainingSetupError(f"{self.root / 'annotations.csv'} has no rows with Partition 'train'")
        train_idx, val_idx = stratified_split(
            [r.label for r in train_all], self.hparams.val_fraction, self.hparams.seed
        )
        splits = {
            "train": [train_all[i] for i in train_idx],
            "val": [train_all[i] for i in val_idx],
            "test": [r for r in self.records if r.partition == "test"],
        }
        log.info("MHIST %s: %s", self.root, {k: self.class_counts(v) for k, v in splits.items()})
        return splits

    @property
    def split_counts(self) -> dict[str, dict[str, int]]:
        """HP and SSA images per split: what the card and the run's dataset input report."""
        return {split: self.class_counts(records) for split, records in self.splits.items()}

    @staticmethod
    def class_counts(records: Sequence[MhistRecord]) -> dict[str, int]:
        positives = sum(r.label for r in records)
        return {"HP": len(records) - positives, "SSA": positives}

    @property
    def pos_weight(self) -> float | None:
        """Negatives per positive in the train split when balancing the loss, else None."""
        if self.hparams.balance != "pos_weight":
            return None
        counts = self.class_counts(self.splits["train"])
        return counts["HP"] / max(counts["SSA"], 1)

    @property
    def network_input(self) -> NetworkInput:
        return self.hparams.network_input or untrained_input()

    @property
    def input_size(self) -> int:
        """``input_size`` when set, else the network's, else 224 (the MHIST images' own size)."""
        return self.hparams.input_size or self.network_input["input_size"] or 224

    @property
    def interpolation(self) -> str:
        """The resize's interpolation: as set, else the pretraining's, else bilinear."""
        if self.hparams.interpolation != "pretrained":
            return self.hparams.interpolation
        return self.network_input["interpolation"] or "bilinear"

    @cached_property
    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(mean, std) per channel: the pretraining's, ImageNet's, or measured on the train split."""
        if self.hparams.normalization == "pretrained":
            network = self.network_input
            if network["mean"] is None or network["std"] is None:
                raise TrainingSetupError(
                    "data.normalization is pretrained, but the network has no pretrained statistics: "
                    "set it to dataset (measured on the train split) or imagenet"
                )
            return tuple(network["mean"]), tuple(network["std"])
        if self.hparams.normalization == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        to_unit = v2.Compose(eval_transform(self.input_size, (0, 0, 0), (1, 1, 1), self.interpolation).transforms)
        total, total_sq, pixels = torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), 0
        for record in self.splits["train"]:
            x = to_unit(load_rgb(self.root / "images" / record.image)).double()
            total += x.sum(dim=(1, 2))
            total_sq += (x * x).sum(dim=(1, 2))
            pixels += x.shape[1] * x.shape[2]
        mean = total / pixels
        std = (total_sq / pixels - mean * mean).clamp_min(1e-12).sqrt()
        log.info("train-split statistics: mean %s std %s", mean.tolist(), std.tolist())
        return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())

    def setup(self, stage: str | None = None) -> None:
        splits = self.splits  # a broken folder is named before any setting about it
        mean, std = self.normalization
        size, interpolation = self.input_size, self.interpolation
        self.train_set = MhistImages(
            self.root,
            splits["train"],
            train_transform(
                size,
                mean,
                std,
                interpolation,
                quarter_turns=self.hparams.quarter_turns,
                flips=self.hparams.flips,
                color_jitter=self.hparams.color_jitter,
            ),
            soft_targets=self.hparams.targets == "votes",
        )
        evaluation = eval_transform(size, mean, std, interpolation)
        self.val_set = MhistImages(self.root, splits["val"], evaluation)
        self.test_set = MhistImages(self.root, splits["test"], evaluation)

    def _loader(self, dataset: Dataset, **kwargs: object) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=torch.cuda.is_available(),
            **kwargs,
        )

    def train_dataloader(self) -> DataLoader:
        if self.hparams.balance != "sampler":
            return self._loader(self.train_set, shuffle=True, drop_last=len(self.train_set) > self.hparams.batch_size)
        labels = torch.tensor([r.label for r in self.train_set.records])
        class_weight = 1.0 / torch.bincount(labels, minlength=2).clamp_min(1).double()
        sampler = WeightedRandomSampler(
            class_weight[labels],
            num_samples=len(labels),
            replacement=True,
            generator=torch.Generator().manual_seed(self.hparams.seed),
        )
        return self._loader(self.train_set, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        if not self.test_set.records:
            raise TrainingSetupError(f"{self.root / 'annotations.csv'} has no rows with Partition 'test'")
        return self._loader(self.test_set)

    def reference_dataloader(self) -> DataLoader:
        """The train split through the evaluation transform: what the OOD guard's reference describes."""
        return self._loader(MhistImages(self.root, self.splits["train"], self.val_set.transform))

    def predict_dataloader(self) -> DataLoader:
        return self.val_dataloader()
