"""S3 -> EFS: copy a published model file onto the model store, write-then-rename.

Triggered by S3 ``ObjectCreated`` events under ``serving/<model_name>/<file>``; writes
``<MODEL_ROOT>/<model_name>/<file>`` through a temporary name so the Lambda and the EC2 service
never read half a file. Only boto3 and the standard library (the Lambda Python runtime has both).
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)
ALLOWED_FILES = ("model.onnx", "model.int8.onnx", "card.json")


def target_for(key: str, root: Path, prefix: str) -> Path | None:
    """``serving/<model>/<file>`` -> ``<root>/<model>/<file>``; None for anything else."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in ALLOWED_FILES or parts[0] in ("", ".", ".."):
        return None
    return root / parts[0] / parts[1]


def copy_object(s3: Any, bucket: str, key: str, target: Path) -> Path:  # noqa: ANN401 - a boto3 client
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".incoming")
    os.close(handle)
    try:
        s3.download_file(bucket, key, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def sync_records(records: list[dict[str, Any]], s3: Any, root: Path, prefix: str) -> list[Path]:  # noqa: ANN401
    written = []
    for record in records:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        target = target_for(key, root, prefix)
        if target is None:
            log.warning("ignoring s3://%s/%s: not serving/<model>/<%s>", bucket, key, "|".join(ALLOWED_FILES))
            continue
        written.append(copy_object(s3, bucket, key, target))
        log.info("s3://%s/%s -> %s", bucket, key, target)
    return written


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:  # noqa: ANN401
    import boto3

    root = Path(os.environ.get("MODEL_ROOT", "/mnt/models"))
    written = sync_records(
        event.get("Records", []), boto3.client("s3"), root, os.environ.get("SERVING_PREFIX", "serving/")
    )
    return {"written": [str(p) for p in written]}
