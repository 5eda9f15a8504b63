"""Tiny in-memory data for tests that exercise the LightningModule without image files."""

from __future__ import annotations

import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader, TensorDataset

from training.classifier import MhistClassifier
from training.networks import MlpClassifier


def tensor_loaders(n: int = 48, size: int = 16, batch_size: int = 8, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Images whose mean brightness carries the label, so a tiny MLP can learn it."""
    generator = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % 3 == 0).long()
    images = torch.randn(n, 3, size, size, generator=generator) + labels.view(-1, 1, 1, 1) * 0.8
    dataset = TensorDataset(images, labels)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True), DataLoader(dataset, batch_size=batch_size)


def tiny_classifier(size: int = 16, **kwargs: object) -> MhistClassifier:
    return MhistClassifier(MlpClassifier(input_size=size, hidden_sizes=(12, 6)), pos_weight=2.0, **kwargs)


def cpu_trainer(tmp_path, **kwargs: object) -> Trainer:
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "default_root_dir": tmp_path,
        "log_every_n_steps": 1,
    }
    return Trainer(**{**defaults, **kwargs})
