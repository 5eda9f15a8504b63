"""S3 -> EFS: mirror a published model file onto the model store, write-then-rename.

Triggered by S3 ``ObjectCreated`` and ``ObjectRemoved`` events under ``serving/<model_name>/<file>``.
S3 does not promise to deliver notifications in order, so an event only says which key to look at:
a key that exists in the bucket now is copied to ``<MODEL_ROOT>/<model_name>/<file>`` through a
temporary name (the Lambda and the EC2 service never read half a file), and one that does not is
removed from the store. Only boto3 and the standard library (the Lambda Python runtime has both).
"""

from __future__ import annotations

import logging
import os
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

from inference.store_files import STORE_FILES

log = logging.getLogger(__name__)
log.setLevel(logging.INFO)
ALLOWED_FILES = STORE_FILES


def target_for(key: str, root: Path, prefix: str) -> Path | None:
    """``serving/<model>/<file>`` -> ``<root>/<model>/<file>``; None for anything else."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 2 or parts[1] not in ALLOWED_FILES or parts[0] in ("", ".", ".."):
        return None
    return root / parts[0] / parts[1]


def mirror_object(s3: Any, bucket: str, key: str, target: Path) -> bool:
    """Make ``target`` what ``key`` is in the bucket now: True when copied, False when the key is gone
    (deleted, or replaced by a delete marker) and ``target`` was removed."""
    from botocore.exceptions import ClientError

    made = not target.parent.exists()  # a removal for a model never synced leaves no empty folder
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".incoming")
    os.close(handle)
    try:
        s3.download_file(bucket, key, tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):  # a 403 stays an error: S3
            raise  # says 404 only to a caller with s3:ListBucket, which the stack's read grant gives
        target.unlink(missing_ok=True)
        return False
    finally:
        Path(tmp).unlink(missing_ok=True)
        if made and not any(target.parent.iterdir()):
            target.parent.rmdir()


def sync_records(records: list[dict[str, Any]], s3: Any, root: Path, prefix: str) -> dict[str, list[Path]]:
    """The store files the records name, ``written`` or ``removed`` as their keys are in S3 now."""
    done: dict[str, list[Path]] = {"written": [], "removed": []}
    for record in records:
        bucket = record["s3"]["bucket"]["name"]
        key = urllib.parse.unquote_plus(record["s3"]["object"]["key"])
        target = target_for(key, root, prefix)
        if target is None:
            log.warning("ignoring s3://%s/%s: not serving/<model>/<%s>", bucket, key, "|".join(ALLOWED_FILES))
            continue
        action = "written" if mirror_object(s3, bucket, key, target) else "removed"
        done[action].append(target)
        log.info("s3://%s/%s -> %s %s", bucket, key, target, action)
    return done


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    import boto3

    root = Path(os.environ.get("MODEL_ROOT", "/mnt/models"))
    done = sync_records(
        event.get("Records", []), boto3.client("s3"), root, os.environ.get("SERVING_PREFIX", "serving/")
    )
    return {action: [str(p) for p in paths] for action, paths in done.items()}
