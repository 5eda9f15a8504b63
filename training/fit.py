"""Train, select, tune and test an MHIST classifier from one YAML file.

    python training/fit.py --config vit.yaml [--data.root /data/mhist] [--trainer.max_epochs 3]
    python training/fit.py --config demo.yaml --resume <mlflow run id>

Bare config names resolve to ``training/configs/``; every constructor argument is overridable.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package, not sibling modules
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from lightning.pytorch import Trainer

from inference.tracking import unreachable_server
from training.artifacts import export_checkpoint, log_export, register
from training.classifier import MhistClassifier
from training.cli import MhistCLI, lightning_notices_hidden
from training.datamodule import MhistDataModule
from training.errors import TrainingSetupError
from training.onnx_export import INT8_MAX_AUROC_DROP, INT8_MIN_AGREEMENT, ExportParityError


def report(trainer: Trainer, tracking_uri: str, model_dir: Path, card: dict) -> None:
    """Say where the results are, and which ONNX file serves."""
    logger, best = trainer.logger, trainer.checkpoint_callback.best_model_path
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    experiment = logger.experiment.get_experiment(logger.experiment_id).name
    print(f"\nMLflow run {logger.run_id} (experiment '{experiment}') at {tracking_uri}")
    print(f"best checkpoint: {best}")
    print(
        f"test AUROC {metrics.get('test/auroc', float('nan')):.3f}; at the tuned threshold "
        f"{metrics.get('test_tuned/threshold', float('nan')):.3f}: sensitivity "
        f"{metrics.get('test_tuned/sensitivity', float('nan')):.3f}, specificity "
        f"{metrics.get('test_tuned/specificity', float('nan')):.3f}"
    )
    gate = card["int8"]
    verdict = "passed its gate: it is the one served" if gate["servable"] else "failed its gate: model.onnx is served"
    print(f"ONNX files: {model_dir}/ ({', '.join(sorted(p.name for p in model_dir.glob('*.onnx')))}, card.json)")
    drop, agreement = gate.get("auroc_drop"), gate.get("label_agreement")
    measured = f"AUROC drop {drop:.4f}, labels agreeing {agreement:.1%}" if None not in (drop, agreement) else "-"
    gate_rule = f"the gate: a drop of at most {INT8_MAX_AUROC_DROP}, {INT8_MIN_AGREEMENT:.0%} agreeing"
    print(f"int8 {verdict} ({measured} on validation; {gate_rule})")


def export(
    trainer: Trainer, model: MhistClassifier, data: MhistDataModule, register_as: str | None
) -> tuple[Path, dict]:
    """The chosen checkpoint (loaded by ``test``) -> ONNX fp32 + int8, card, plots -> the MLflow run;
    returns the folder of the ONNX files and the card."""
    logger, best = trainer.logger, trainer.checkpoint_callback.best_model_path
    out_dir = Path(best).parent.parent / "export"
    card = export_checkpoint(model, data, out_dir, run_id=logger.run_id)
    log_export(logger.experiment, logger.run_id, out_dir, card)
    logger.experiment.set_tag(logger.run_id, "best_checkpoint", str(Path(best).resolve()))
    if register_as:
        version = register(logger.experiment, logger.run_id, register_as)
        print(f"registered as {register_as} version {version}")
    return out_dir / "model", card


def fit_test_export(args: list[str] | None) -> Trainer:
    """The job: config -> fit -> test the chosen checkpoint -> export, log and report (rank zero).
    Called inside ``main``'s ``lightning_notices_hidden``, which takes back the warning filters set here."""
    cli = MhistCLI(args=args)
    trainer, model, data = cli.trainer, cli.model, cli.datamodule
    epochs = trainer.max_epochs  # 0 would train nothing, then fail to test "the best" checkpoint
    if epochs is not None and epochs < 1 and epochs != -1:
        raise TrainingSetupError(f"trainer.max_epochs must be at least 1, or -1 for no limit, got {epochs}")
    if problem := unreachable_server(cli.tracking_uri):  # before MLflow retries it for minutes mid-setup
        raise TrainingSetupError(f"{problem}; start it, or unset MLFLOW_TRACKING_URI to log into the local store")
    resume = cli.resume_checkpoint  # one MLflow lookup of the run named by --resume
    if resume:  # the run's checkpoint folder is meant to hold its earlier epochs
        warnings.filterwarnings("ignore", "Checkpoint directory .* exists and is not empty")
    trainer.fit(model, datamodule=data, ckpt_path=resume)
    # by path: "best" would make Lightning warn in every fit that the latest-epoch checkpoint is not used
    trainer.test(model, datamodule=data, ckpt_path=trainer.checkpoint_callback.best_model_path)
    if trainer.is_global_zero:
        report(trainer, cli.tracking_uri, *export(trainer, model, data, cli.config.register))
    return trainer


def main(args: list[str] | None = None) -> Trainer:
    """One fit, its user errors as one line. MLflow writes its tracking URI into ``os.environ``; it
    is put back on the way out so that a second call in the same process does not log into the
    first call's store."""
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with lightning_notices_hidden():
            return fit_test_export(args)
    except TrainingSetupError as error:
        sys.exit(f"error: {error}")
    except ExportParityError as error:
        sys.exit(f"error: the exported model was not logged: {error}")
    finally:
        if tracking_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = tracking_uri


if __name__ == "__main__":
    main()
