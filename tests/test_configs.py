"""Every shipped config parses and builds its model, data module and trainer."""

import sys
from pathlib import Path

import pytest
from torch.optim import SGD, AdamW
from torch.optim.lr_scheduler import CosineAnnealingLR

from training.classifier import MhistClassifier
from training.cli import CONFIG_DIR, MhistCLI, resolve_config_names
from training.errors import TrainingSetupError
from training.finetuning import FreezeThenUnfreeze
from training.networks import MlpClassifier, TimmClassifier
from training.optim import Plateau

CONFIGS = sorted(p.name for p in CONFIG_DIR.glob("*.yaml"))


def test_the_four_configs_ship() -> None:
    assert CONFIGS == ["demo-mlp.yaml", "demo.yaml", "mlp.yaml", "vit.yaml"]


@pytest.mark.parametrize("name", CONFIGS)
def test_config_instantiates(name: str, small_root: Path, tmp_path: Path) -> None:
    args = ["--config", name, "--data.root", str(small_root), "--trainer.default_root_dir", str(tmp_path)]
    if name == "vit.yaml":  # no hub here: the real config asks for ImageNet weights
        args += ["--model.net.init_args.pretrained", "false"]
    cli = MhistCLI(args=args)
    assert isinstance(cli.model, MhistClassifier)
    assert cli.datamodule.root == small_root
    assert any(isinstance(c, FreezeThenUnfreeze) for c in cli.trainer.callbacks)
    expected = MlpClassifier if "mlp" in name else TimmClassifier
    assert isinstance(cli.model.net, expected)
    assert cli.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    optimizer = cli.model.optimizer(cli.model.parameters())
    schedule = cli.model.scheduler(optimizer, 100)
    if name == "vit.yaml":
        assert cli.model.net.model_name == "vit_base_patch16_224"
        assert cli.trainer.precision == "bf16-mixed"
        assert (type(optimizer), optimizer.defaults["lr"], optimizer.defaults["nesterov"]) == (SGD, 0.01, True)
        assert (type(schedule), schedule.T_max) == (CosineAnnealingLR, 100)  # the fit's steps, both phases
    if name == "mlp.yaml":
        assert (type(optimizer), optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (AdamW, 1e-4, 0.05)
        assert (type(schedule), schedule.monitor, schedule.factor, schedule.patience) == (Plateau, "val/loss", 0.5, 2)


def test_a_bare_config_name_on_the_command_line_is_found_and_argv_left_alone(
    small_root: Path, tmp_path: Path, monkeypatch
) -> None:
    """``fit.py`` parses ``sys.argv``, and DDP starts the other ranks with that same argv."""
    argv = ["fit.py", "--config", "demo-mlp.yaml", "--data.root", str(small_root)]
    monkeypatch.setattr(sys, "argv", list(argv))
    monkeypatch.chdir(tmp_path)
    cli = MhistCLI()
    assert isinstance(cli.model.net, MlpClassifier)
    assert sys.argv == argv


def test_bare_names_resolve_to_the_configs_folder(tmp_path: Path) -> None:
    assert resolve_config_names(["--config", "vit.yaml"]) == ["--config", str(CONFIG_DIR / "vit.yaml")]
    assert resolve_config_names(["--config=demo.yaml"]) == [f"--config={CONFIG_DIR / 'demo.yaml'}"]
    own = tmp_path / "vit.yaml"
    own.write_text("{}")
    assert resolve_config_names(["--config", str(own)]) == ["--config", str(own)]


def test_an_unknown_config_name_is_refused_with_the_shipped_ones_listed() -> None:
    shipped = r"\(demo-mlp.yaml, demo.yaml, mlp.yaml, vit.yaml\)"
    with pytest.raises(
        TrainingSetupError, match=rf"^config vti.yaml is neither a file nor one of .*/configs/ {shipped}$"
    ):
        resolve_config_names(["--data.root", "x", "--config", "vti.yaml"])
    with pytest.raises(TrainingSetupError, match="config demo.yml is neither"):
        resolve_config_names(["--config=demo.yml"])
    inline = ["--config", "{trainer: {max_epochs: 1}}"]  # jsonargparse also takes inline YAML: its parser judges it
    assert resolve_config_names(inline) == inline


def test_mlflow_tracking_uri_from_the_environment(small_root: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    cli = MhistCLI(args=["--config", "demo.yaml", "--data.root", str(small_root)])
    assert cli.tracking_uri == "http://127.0.0.1:5999"
