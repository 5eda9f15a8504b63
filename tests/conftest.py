"""Shared fixtures: generated MHIST folders, CPU only, outputs under tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from training.demo_data import generate_demo_dataset

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _cpu_and_local_tracking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach a GPU or a tracking server the developer happens to have configured."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data set the README's demo trains on (480 images)."""
    return generate_demo_dataset(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MHIST-layout folder for fast tests (60 train, 20 test)."""
    return generate_demo_dataset(tmp_path_factory.mktemp("small"), n_train=60, n_test=20, seed=1)


@pytest.fixture
def small_copy(small_root: Path, tmp_path: Path) -> Path:
    """A private copy of the small folder that a test may break."""
    return Path(shutil.copytree(small_root, tmp_path / "mhist"))


@pytest.fixture(scope="session")
def trained(small_root: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A tiny MLP trained and exported by ``fit.py``: ``root`` (its MLflow store is ``root/mlflow.db``)
    and ``export`` (the export folder)."""
    from training.fit import main

    out = tmp_path_factory.mktemp("trained")
    args = ["--config", "demo-mlp.yaml", "--data.root", str(small_root), "--trainer.default_root_dir", str(out)]
    args += ["--trainer.max_epochs", "2", "--data.num_workers", "0", "--trainer.enable_progress_bar", "false"]
    trainer = main(args)
    return SimpleNamespace(root=out, export=Path(trainer.checkpoint_callback.best_model_path).parent.parent / "export")


@pytest.fixture(scope="session")
def model_store(trained: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model store (``<root>/<model_name>/model.onnx`` + int8) holding the tiny trained, exported MLP."""
    store = tmp_path_factory.mktemp("models")
    shutil.copytree(trained.export / "model", store / "mlp-64-32")
    return store


@pytest.fixture(scope="session")
def stack_template(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """The stack as cdk.json configures it, synthesized offline: (stack, Template)."""
    from tests.stacks import synth

    return synth(tmp_path_factory.mktemp("cdk"))


@pytest.fixture(scope="session")
def template(stack_template: tuple) -> object:
    """Its aws_cdk.assertions.Template (aws_cdk is imported only by the tests that use it)."""
    return stack_template[1]
