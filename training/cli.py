"""``MhistCLI``: LightningCLI with our callbacks, MLflow defaults, config logging and resume.

Configuration flows one way: YAML -> this parser -> constructor arguments. The callbacks every
run needs get their own config sections (``finetuning``, ``checkpoint``, ``early_stopping``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import warnings
from argparse import ArgumentError
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.loggers import MLFlowLogger
from lightning_utilities.core import rank_zero
from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.classifier import MhistClassifier
from training.datamodule import MhistDataModule
from training.errors import TrainingSetupError
from training.finetuning import FreezeThenUnfreeze
from training.mhist import fingerprint

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).parent / "configs"
MLFLOW_PARAM_LIMIT = 6000
EXPERIMENT_KIND = "mlflow.experimentKind"
RUN_NAME_TAG = "mlflow.runName"
DATASET_CONTEXT = "mlflow.data.context"
CHECKPOINT_DEFAULTS = {  # the best epoch by the guarded score: what is tested and exported
    "monitor": "val/guarded_score",
    "mode": "max",
    "save_on_train_epoch_end": True,  # after validation: a resumed fit starts at the next epoch
    "auto_insert_metric_name": False,
    "filename": "epoch{epoch:02d}-score{val/guarded_score:.4f}",
}
# The latest epoch, for --resume: ModelCheckpoint's own save_last refreshes last.ckpt only in an epoch
# that also saved a top-k checkpoint (Lightning 2.6), so a resume after an epoch that did not improve
# would go back and train it again. Without a monitor, one checkpoint is kept: the latest.
LATEST_DEFAULTS = {
    "monitor": None,
    "save_top_k": 1,
    "filename": "last",
    "enable_version_counter": False,
    "save_on_train_epoch_end": True,
}


@contextmanager
def lightning_notices_hidden() -> Iterator[None]:
    """Every Lightning fit here (``fit.py``, ``bench.training``) runs inside this. Two notices print
    in every fit and DDP rank, and our users can do nothing about either: torch's FutureWarning that
    the pinned Lightning still builds a ``LeafSpec``, and Lightning's advertisement for its cloud
    logger (runs here go to MLflow by design). Scoped, so callers keep their own filters."""
    rank_zero_log = rank_zero.log  # the logger rank_zero_info writes to, set by lightning.pytorch
    rank_zero_log.addFilter(_not_a_cloud_logger_tip)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
            yield
    finally:
        rank_zero_log.removeFilter(_not_a_cloud_logger_tip)


def _not_a_cloud_logger_tip(record: logging.LogRecord) -> bool:
    return "litlogger" not in record.getMessage()


def accelerator_problem(accelerator: object) -> str | None:
    """Why ``accelerator`` cannot run here, when it is a GPU that torch cannot see; Lightning says only
    "No supported gpu backend found!", in a traceback. Other values are left to Lightning."""
    if accelerator not in ("gpu", "cuda") or torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build on a GPU machine"
    return f"torch (CUDA {torch.version.cuda}) sees no GPU on this machine; use auto or cpu here"


def resolve_config_names(args: Sequence[str]) -> list[str]:
    """``--config vit.yaml`` names a file in ``training/configs/`` unless that path exists."""
    resolved = list(args)
    for i, arg in enumerate(resolved):
        if arg in ("--config", "-c") and i + 1 < len(resolved):
            resolved[i + 1] = config_path(resolved[i + 1])
        elif arg.startswith("--config="):
            resolved[i] = f"--config={config_path(arg.removeprefix('--config='))}"
    return resolved


def config_path(name: str) -> str:
    """The file a config name means. A YAML file name found nowhere is refused here, with the shipped
    configs listed, instead of by the parser after its whole usage text; anything else (jsonargparse
    also takes inline YAML) is left to the parser."""
    if Path(name).is_file() or not name.endswith((".yaml", ".yml")):
        return name
    if (CONFIG_DIR / name).is_file():
        return str(CONFIG_DIR / name)
    shipped = ", ".join(sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
    raise TrainingSetupError(f"config {name} is neither a file nor one of {CONFIG_DIR}/ ({shipped})")


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> ``{"model.init_args.lr": "0.001"}`` with values cut to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:MLFLOW_PARAM_LIMIT]
    return flat


def git_commit() -> str:
    """The commit the code ran from, with ``-dirty`` when the tree had changes; ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=CONFIG_DIR, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=CONFIG_DIR, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def dataset_input(data: MhistDataModule, digest: str) -> DatasetInput:
    """The run's MLflow dataset input (its Datasets tab): the folder, its annotations ``digest``, and
    the class counts per split as the profile."""
    dataset = Dataset(
        name=data.root.name or "mhist",
        digest=digest[:36],
        source_type="local",
        source=json.dumps({"uri": str(data.root.resolve()), "description": data.hparams.description}),
        profile=json.dumps(data.split_counts),
    )
    return DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT, "training")])


class LogConfigToMlflow(SaveConfigCallback):
    """Send the resolved config to the MLflow run as params and as ``config.yaml``.

    LightningCLI only writes the config to the log dir, where a second run would collide.
    Resuming a run keeps its params; values that changed are reported as a warning, since
    MLflow params cannot be overwritten.
    """

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        logger = trainer.logger
        if not isinstance(logger, MLFlowLogger):
            return
        text = self.parser.dump(self.config, skip_none=False)
        params = flatten(yaml.safe_load(text))
        client, run_id = logger.experiment, logger.run_id
        existing = client.get_run(run_id).data.params
        changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
        if changed:
            log.warning("resumed run %s keeps its original values for %s", run_id, ", ".join(changed))
        fresh = {k: v for k, v in params.items() if k not in existing}
        if fresh:
            logger.log_hyperparams(fresh)
        client.log_text(run_id, text, "config/config.yaml")
        model_name = getattr(pl_module, "model_name", "unknown")
        tags = {"model_name": model_name, "git_commit": git_commit()}
        if not existing:  # a fresh run: MLflow drew its name after seed_everything, the same name every time
            tags[RUN_NAME_TAG] = f"{model_name}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        datamodule = getattr(trainer, "datamodule", None)
        if isinstance(datamodule, MhistDataModule):
            tags |= fingerprint(datamodule.root, datamodule.records)
            client.log_inputs(run_id, datasets=[dataset_input(datamodule, tags["data.annotations_sha256"])])
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        # MLflow 3 opens an experiment without this tag on its (empty) traces view, not on its runs
        experiment_id = client.get_run(run_id).info.experiment_id
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND, "custom_model_development")


def parser_problem(text: str) -> str:
    """jsonargparse's refusal in one line: the config key, and pydantic's reason for a bounded type
    (``model.net.dropout: Input should be less than 1, got 1.5``) or the class's for a class path
    (``model.optimizer: module 'torch.optim' has no attribute 'Adm', got torch.optim.Adm``)."""
    keys = re.findall(r'Parser key "([^"]+)"', text)
    reason = re.search(r"^\s+(\S.*?) \[type=[^,]+, input_value=(.*?), input_type", text, re.MULTILINE) or re.search(
        r"expects a function or a callable class: (.*?)\. Got value: (.*)$", text, re.DOTALL
    )
    if keys and reason:
        return f"{'.'.join(keys)}: {reason.group(1)}, got {' '.join(reason.group(2).split())}"
    return " ".join(text.split())


class MhistCLI(LightningCLI):
    def __init__(self, args: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(
            MhistClassifier,
            MhistDataModule,
            args=list(args) if args is not None else None,
            run=False,
            save_config_callback=LogConfigToMlflow,
            save_config_kwargs={"save_to_log_dir": False},
            seed_everything_default=42,
            auto_configure_optimizers=False,
            parser_kwargs={"exit_on_error": False},  # fit.py says what is wrong in one line, not after the usage
            **kwargs,
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--resume", type=str | None, default=None, help="MLflow run id to resume")
        parser.add_argument(
            "--register",
            type=str | None,
            default=None,
            help="also register the ONNX files under this model-registry name",
        )
        parser.link_arguments(  # the data module feeds the network what its pretraining expects
            "model", "data.network_input", compute_fn=lambda model: model.net.expected_input, apply_on="instantiate"
        )
        parser.add_lightning_class_args(FreezeThenUnfreeze, "finetuning")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")  # first: trainer.checkpoint_callback
        parser.add_lightning_class_args(ModelCheckpoint, "latest_checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.set_defaults(
            {
                **{f"checkpoint.{key}": value for key, value in CHECKPOINT_DEFAULTS.items()},
                **{f"latest_checkpoint.{key}": value for key, value in LATEST_DEFAULTS.items()},
                "early_stopping.monitor": "val/loss",
                "early_stopping.mode": "min",
                "early_stopping.patience": 5,
                "trainer.default_root_dir": "outputs",
                "trainer.logger": {
                    "class_path": "lightning.pytorch.loggers.MLFlowLogger",
                    "init_args": {"experiment_name": "mhist"},
                },
                "trainer.callbacks": [{"class_path": "lightning.pytorch.callbacks.LearningRateMonitor"}],
            }
        )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Bare config names are found in ``training/configs/``, in ``sys.argv`` too (every DDP rank parses
        the same one). A mistyped option or value is the user's to fix: one setup error, like every other
        here, since the parser raises instead of printing its whole usage (``exit_on_error`` is off)."""
        try:
            if isinstance(args, (dict, Namespace)):
                self.config = parser.parse_object(args)
            else:
                self.config = parser.parse_args(resolve_config_names(sys.argv[1:] if args is None else args))
        except ArgumentError as error:
            raise TrainingSetupError(parser_problem(str(error))) from None

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """What Lightning refuses in the trainer's settings (a strategy name, a device count, an accelerator
        whose package is missing) is the user's to fix: one line. Our own constructors refuse a user's
        value as TrainingSetupError; any other error there is a bug, and keeps its traceback."""
        try:
            return super().instantiate_trainer(**kwargs)
        except (ValueError, ImportError, MisconfigurationException) as error:
            raise TrainingSetupError(f"trainer: {error}") from error

    def before_instantiate_classes(self) -> None:
        """A GPU that is not there is refused; local MLflow store under ``default_root_dir`` unless
        ``MLFLOW_TRACKING_URI`` is set."""
        config = self.config
        if problem := accelerator_problem(config.trainer.accelerator):
            raise TrainingSetupError(f"trainer.accelerator {config.trainer.accelerator}: {problem}")
        root = Path(config.trainer.default_root_dir or "outputs").resolve()
        logger = config.trainer.logger
        if logger and "MLFlowLogger" in str(logger.class_path):
            args = logger.init_args
            if not args.tracking_uri:
                args.tracking_uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root}/mlflow.db"
                root.mkdir(parents=True, exist_ok=True)
            if not args.artifact_location and args.tracking_uri.startswith("sqlite:"):
                args.artifact_location = str(root / "mlartifacts")
            if config.resume:
                args.run_id = config.resume

    @property
    def tracking_uri(self) -> str:
        """The MLflow store of this fit. Every fit logs there: the run holds the model files, the
        metrics and the plots, so another logger (or none) is refused before training."""
        logger = self.trainer.logger
        if not isinstance(logger, MLFlowLogger):
            kind = "false" if logger is None else type(logger).__name__
            raise TrainingSetupError(
                f"trainer.logger is {kind}: fit.py logs each run, its model files and plots into MLflow, so it "
                "needs the MLFlowLogger (set MLFLOW_TRACKING_URI to choose the store)"
            )
        return self.config.trainer.logger.init_args.tracking_uri  # set in before_instantiate_classes

    @property
    def resume_checkpoint(self) -> str | None:
        """``last.ckpt`` of the run named by ``--resume``, where ModelCheckpoint put it."""
        run_id = self.config.resume
        if not run_id:
            return None
        logger = self.trainer.logger
        try:
            run = MlflowClient(self.tracking_uri).get_run(run_id)
        except MlflowException as error:
            raise TrainingSetupError(f"--resume: no MLflow run {run_id} at {self.tracking_uri}") from error
        root = logger.save_dir or self.trainer.default_root_dir
        path = Path(root, run.info.experiment_id, run_id, "checkpoints", "last.ckpt")
        if not path.is_file():
            raise TrainingSetupError(f"--resume {run_id}: no checkpoint at {path}")
        epochs = self.trainer.max_epochs
        if run.info.status == "FINISHED" and epochs not in (None, -1) and epochs_done(path) >= epochs:
            raise TrainingSetupError(
                f"--resume {run_id}: the run finished all {epochs} epochs of trainer.max_epochs; resuming would only "
                "test and export it again over its results. Pass a larger --trainer.max_epochs to train it further"
            )
        return str(path)


def epochs_done(checkpoint: Path) -> int:
    """Epochs a Lightning checkpoint has trained: its ``epoch`` is the last one it finished (0-based).
    Memory-mapped, so a ViT-B checkpoint with its optimizer state is not read whole for one number."""
    return int(torch.load(checkpoint, map_location="cpu", mmap=True, weights_only=False)["epoch"]) + 1


__all__ = ["LearningRateMonitor", "MhistCLI", "config_path", "resolve_config_names"]
