"""Promote an MLflow run's ONNX files into a model store folder: ``<store>/<model_name>/``.

    python -m inference.publish --run-id <id> --to outputs/models
    python -m inference.publish --latest vit_tiny_patch16_224 --to outputs/models
    python -m inference.publish --run-id <id> --to s3://<artifact bucket>/serving   # AWS: the sync
                                                  # function copies it onto EFS (infra_stack/serving.py)

Into a folder, each file is written under a temporary name and renamed into place, so a running
service never reads half a file and picks the new one up on its next check. Runs where training
happens; it needs MLflow, serving does not.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from inference.errors import unwritable_reason
from inference.store_files import CARD_FILE, MODEL_FILES, STORE_FILES
from inference.tracking import DEFAULT_STORE, unreadable_store

FILES = STORE_FILES


def latest_run(client, model_name: str, experiment: str) -> str:
    """The newest finished run of ``model_name``; when there is none, the error names what there is."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        there = ", ".join(sorted(e.name for e in client.search_experiments())) or "none"
        raise SystemExit(f"error: no experiment {experiment!r} at {client.tracking_uri} (there: {there})")
    finished = "attributes.status = 'FINISHED'"
    runs = client.search_runs(
        [found.experiment_id],
        f"tags.model_name = '{model_name}' and {finished}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        trained = {r.data.tags.get("model_name") for r in client.search_runs([found.experiment_id], finished)}
        there = ", ".join(sorted(trained - {None})) or "none"
        raise SystemExit(f"error: no finished run of {model_name} in experiment {experiment!r} (its models: {there})")
    return runs[0].info.run_id


def install(source: Path, store: Path) -> Path:
    """Copy ``source/{model.onnx, model.int8.onnx, card.json}`` into ``store/<model_name>/``. Every file
    is copied under a temporary name before any is renamed into place, and a file the new run lacks is
    removed: a service never loads one run's fp32 beside another's int8, even when a copy fails."""
    card = json.loads((source / CARD_FILE).read_text())
    target = store / card["model_name"]
    staged: list[tuple[str, str]] = []
    try:
        target.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (source / name).is_file():
                handle, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}.", suffix=".incoming")
                os.close(handle)
                staged.append((tmp, name))
                shutil.copyfile(source / name, tmp)
                os.chmod(tmp, 0o644)
        for tmp, name in staged:
            os.replace(tmp, target / name)
        for name in set(FILES) - {name for _, name in staged}:
            (target / name).unlink(missing_ok=True)
    except OSError as error:  # a full disk, a file where a folder belongs, no permission
        reason = unwritable_reason(target, error)
        raise SystemExit(f"error: cannot publish into {target} ({reason}); what was there is unchanged") from error
    finally:
        for tmp, _ in staged:
            Path(tmp).unlink(missing_ok=True)
    return target


def upload(source: Path, destination: str, s3: object | None = None) -> str:
    """Copy the files to ``s3://bucket/prefix/<model_name>/``; the sync function mirrors them on EFS.

    A file the run lacks is deleted first (the previous run's int8 must not stay beside a new fp32),
    and card.json goes last, so its arrival means the model files are already there.
    """
    import boto3
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError

    card = json.loads((source / CARD_FILE).read_text())
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    key_prefix = f"{prefix.strip('/')}/{card['model_name']}/".lstrip("/")
    try:
        client = s3 or boto3.client("s3")
        for name in FILES:
            if not (source / name).is_file():
                client.delete_object(Bucket=bucket, Key=key_prefix + name)  # nothing there: nothing done
        for name in FILES:  # FILES ends with card.json
            if (source / name).is_file():
                client.upload_file(str(source / name), bucket, key_prefix + name)
    except (BotoCoreError, ClientError, S3UploadFailedError) as error:  # credentials, network, bucket, access
        raise SystemExit(f"error: cannot upload to s3://{bucket}/{key_prefix}: {error}") from error
    return f"s3://{bucket}/{key_prefix}"


def main(argv: list[str] | None = None) -> Path | str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--run-id")
    which.add_argument("--latest", metavar="MODEL_NAME", help="the newest finished run of this model")
    parser.add_argument("--to", required=True, help="a model store folder, or s3://<artifact bucket>/serving")
    parser.add_argument("--experiment", default="mhist")
    parser.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_STORE)
    args = parser.parse_args(argv)
    if problem := unreadable_store(args.tracking_uri):
        sys.exit(f"error: {problem}")

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.tracking_uri)
    try:
        run_id = args.run_id or latest_run(client, args.latest, args.experiment)
        with tempfile.TemporaryDirectory() as tmp:
            source = Path(client.download_artifacts(run_id, "model", tmp))
            if not (source / MODEL_FILES["fp32"]).is_file():
                sys.exit(f"error: run {run_id} has no model/model.onnx artifact")
            target = upload(source, args.to) if args.to.startswith("s3://") else install(source, Path(args.to))
    except MlflowException as error:
        unknown = args.run_id and error.error_code == "RESOURCE_DOES_NOT_EXIST"
        sys.exit(f"error: no MLflow run {args.run_id} at {args.tracking_uri}" if unknown else f"error: {error.message}")
    print(f"published run {run_id} to {target}")
    return target


if __name__ == "__main__":
    main()
