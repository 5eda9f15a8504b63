"""Export a checkpoint, or the chosen checkpoint of an MLflow run, again.

    python training/export.py --run-id <mlflow run id>            # re-export and log into that run
    python training/export.py --checkpoint path/to/epoch03.ckpt    # export next to the checkpoint
        [--data-root /data/mhist] [--out DIR] [--tracking-uri URI] [--no-log]

Writes ``model/model.onnx``, ``model/model.int8.onnx``, ``model/card.json`` and ``plots/``; the
parity check against PyTorch and the int8 gate run on the validation split as after a fit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import the package, not sibling modules
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from inference.errors import unwritable_reason
from inference.tracking import DEFAULT_STORE, unreadable_store
from training.artifacts import export_checkpoint, log_export
from training.classifier import MhistClassifier
from training.datamodule import MhistDataModule
from training.errors import TrainingSetupError
from training.onnx_export import ExportParityError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run-id", help="MLflow run whose chosen checkpoint to export (and log into)")
    source.add_argument("--checkpoint", type=Path, help="a Lightning checkpoint written by training/fit.py")
    parser.add_argument("--data-root", help="MHIST folder for the parity check (default: the one trained on)")
    parser.add_argument("--out", type=Path, help="output folder (default: export/ beside the checkpoints)")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE)
    parser.add_argument("--no-log", action="store_true", help="do not log the files into the MLflow run")
    return parser.parse_args(argv)


def checkpoint_of(client: MlflowClient, run_id: str) -> Path:
    try:
        run = client.get_run(run_id)
    except MlflowException as error:
        raise TrainingSetupError(f"no MLflow run {run_id} at {client.tracking_uri}") from error
    if "best_checkpoint" in run.data.tags:
        return Path(run.data.tags["best_checkpoint"])
    if run.info.status != "FINISHED" and "model_name" in run.data.tags:  # a fit stopped before its export
        raise TrainingSetupError(
            f"run {run_id} did not finish ({run.info.status}): a fit exports when it ends; finish it with "
            f"training/fit.py --config <the run's config/config.yaml> --resume {run_id}"
        )
    raise TrainingSetupError(f"run {run_id} has no best_checkpoint tag (was it trained by training/fit.py?)")


def load_checkpoint(checkpoint: Path, data_root: str | None) -> tuple[MhistClassifier, MhistDataModule]:
    """The module and data module a fit saved; any other file is refused by name, not with torch's traceback."""
    try:
        module = MhistClassifier.load_from_checkpoint(checkpoint, map_location="cpu")
        data = MhistDataModule.load_from_checkpoint(
            checkpoint, num_workers=0, **({"root": data_root} if data_root else {})
        )
    except TrainingSetupError:
        raise
    except Exception as error:
        first_line = next(iter(str(error).strip().splitlines()), "")
        reason = type(error).__name__ + (f": {first_line}" if 0 < len(first_line) <= 100 else "")
        raise TrainingSetupError(f"{checkpoint} is not a checkpoint written by training/fit.py ({reason})") from error
    return module, data


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.run_id and (problem := unreadable_store(args.tracking_uri)):
        sys.exit(f"error: {problem}")  # before MLflow makes an empty store there
    client = MlflowClient(args.tracking_uri)
    try:
        checkpoint = checkpoint_of(client, args.run_id) if args.run_id else args.checkpoint
        if not checkpoint.is_file():
            raise TrainingSetupError(f"checkpoint {checkpoint} does not exist")
        run_id = args.run_id or checkpoint.resolve().parent.parent.name
        module, data = load_checkpoint(checkpoint, args.data_root)
        out = args.out or checkpoint.resolve().parent.parent / "export"
        try:  # before the export's minutes of work, not after them
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise TrainingSetupError(f"--out {out}: cannot write there ({unwritable_reason(out, error)})") from error
        card = export_checkpoint(module, data, out, run_id=run_id)
        if args.run_id and not args.no_log:
            log_export(client, run_id, out, card)
    except (TrainingSetupError, ExportParityError) as error:
        sys.exit(f"error: {error}")
    print(f"exported to {out / 'model'}; int8 servable: {card['int8']['servable']}")
    return card


if __name__ == "__main__":
    main()
