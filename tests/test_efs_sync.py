"""Publishing to S3 and the S3 -> EFS sync, run locally: a folder stands in for EFS and moto's S3
server on 127.0.0.1 for the bucket (AWS itself cannot exist here)."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import boto3
import pytest

from inference.efs_sync import handler, sync_records, target_for
from inference.predictor import Predictor
from inference.publish import upload
from tests.servers import S3_KEYS, s3_server

MODEL = "mlp-64-32"


def event(bucket: str, *keys: str, name: str = "ObjectCreated:Put") -> dict:
    """An S3 notification as AWS sends it (keys URL-encoded)."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": name,
                "s3": {"bucket": {"name": bucket}, "object": {"key": urllib.parse.quote_plus(k)}},
            }
            for k in keys
        ]
    }


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with s3_server(tmp_path / "s3.log") as url:
        for key, value in S3_KEYS.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", url)
        client = boto3.client("s3")
        client.create_bucket(Bucket="artifacts")
        yield client


def test_only_serving_model_files_map_to_the_store(tmp_path: Path) -> None:
    assert target_for("serving/vit/model.onnx", tmp_path, "serving/") == tmp_path / "vit" / "model.onnx"
    for key in (
        "mlflow/1/abc/artifacts/model/model.onnx",
        "serving/vit/notes.txt",
        "serving/model.onnx",
        "serving/../model.onnx",
        "serving/a/b/model.onnx",
    ):
        assert target_for(key, tmp_path, "serving/") is None


def test_publish_then_sync_puts_a_loadable_model_on_the_store(
    s3, model_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = upload(model_store / MODEL, "s3://artifacts/serving", s3)
    assert destination == f"s3://artifacts/serving/{MODEL}/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="artifacts")["Contents"])
    assert keys == [f"serving/{MODEL}/{n}" for n in ("card.json", "model.int8.onnx", "model.onnx")]

    efs = tmp_path / "efs"
    monkeypatch.setenv("MODEL_ROOT", str(efs))
    result = handler(event("artifacts", *keys, "serving/ignored.txt"), None)
    assert sorted(Path(p).name for p in result["written"]) == ["card.json", "model.int8.onnx", "model.onnx"]
    assert result["removed"] == []
    assert not list((efs / MODEL).glob(".*incoming"))  # nothing half-written left behind
    assert json.loads((efs / MODEL / "card.json").read_text())["model_name"] == MODEL
    assert Predictor.load(efs / MODEL / "model.onnx").name == MODEL


def test_publish_names_an_upload_that_fails(s3, model_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        SystemExit, match=f"^error: cannot upload to s3://no-such-bucket/serving/{MODEL}/: .*NoSuchBucket"
    ):
        upload(model_store / MODEL, "s3://no-such-bucket/serving", s3)
    for key in S3_KEYS:  # no credentials anywhere: botocore's own error, by name
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # the fixture's session has cached its credentials
    with pytest.raises(SystemExit, match="cannot upload to s3://artifacts/serving/.*Unable to locate credentials"):
        upload(model_store / MODEL, "s3://artifacts/serving")


def test_a_replacement_is_renamed_into_place(s3, model_store: Path, tmp_path: Path) -> None:
    upload(model_store / MODEL, "s3://artifacts/serving", s3)
    efs = tmp_path / "efs"
    (first,) = sync_records(event("artifacts", f"serving/{MODEL}/model.onnx")["Records"], s3, efs, "serving/")[
        "written"
    ]
    inode = first.stat().st_ino
    (second,) = sync_records(event("artifacts", f"serving/{MODEL}/model.onnx")["Records"], s3, efs, "serving/")[
        "written"
    ]
    assert second == first
    assert second.stat().st_ino != inode
    assert second.stat().st_mode & 0o777 == 0o644


def test_a_run_without_int8_removes_the_previous_int8_from_s3_and_the_store(
    s3, model_store: Path, tmp_path: Path
) -> None:
    """The previous run's int8 stayed beside a new run's fp32, and ``auto`` serves int8."""
    import shutil

    efs, int8 = tmp_path / "efs", f"serving/{MODEL}/model.int8.onnx"
    upload(model_store / MODEL, "s3://artifacts/serving", s3)
    sync_records(event("artifacts", int8)["Records"], s3, efs, "serving/")
    newer = Path(shutil.copytree(model_store / MODEL, tmp_path / "newer"))
    (newer / "model.int8.onnx").unlink()
    upload(newer, "s3://artifacts/serving", s3)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="artifacts")["Contents"])
    assert keys == [f"serving/{MODEL}/card.json", f"serving/{MODEL}/model.onnx"]
    done = sync_records(event("artifacts", int8, name="ObjectRemoved:Delete")["Records"], s3, efs, "serving/")
    assert done == {"written": [], "removed": [efs / MODEL / "model.int8.onnx"]}
    assert not (efs / MODEL / "model.int8.onnx").exists()


def test_events_out_of_order_leave_the_store_as_the_bucket_is(s3, model_store: Path, tmp_path: Path) -> None:
    """S3 does not promise the order of its notifications: a late 'created' for a key deleted since,
    or a late 'removed' for a key put back since, must not undo the newer state."""
    efs, key = tmp_path / "efs", f"serving/{MODEL}/model.int8.onnx"
    s3.put_object(Bucket="artifacts", Key=key, Body=b"gone soon")
    s3.delete_object(Bucket="artifacts", Key=key)
    (efs / MODEL).mkdir(parents=True)
    (efs / MODEL / "model.int8.onnx").write_bytes(b"stale")
    late_created = sync_records(event("artifacts", key)["Records"], s3, efs, "serving/")
    assert late_created["removed"] == [efs / MODEL / "model.int8.onnx"]  # no 404 traceback, no stale file
    assert not (efs / MODEL / "model.int8.onnx").exists()
    s3.upload_file(str(model_store / MODEL / "model.int8.onnx"), "artifacts", key)
    late_removed = sync_records(event("artifacts", key, name="ObjectRemoved:Delete")["Records"], s3, efs, "serving/")
    assert late_removed["written"] == [efs / MODEL / "model.int8.onnx"]
    assert Predictor.load(efs / MODEL / "model.int8.onnx").name == MODEL
    never = sync_records(
        event("artifacts", "serving/never-synced/model.onnx", name="ObjectRemoved:Delete")["Records"],
        s3,
        efs,
        "serving/",
    )
    assert never["removed"] == [efs / "never-synced" / "model.onnx"]
    assert not (efs / "never-synced").exists()  # no empty model folder made for it


def test_the_sync_functions_asset_holds_what_it_imports(stack_template: tuple) -> None:
    """The function's code is a folder of the repo cut down by the asset's excludes; a module it imports
    but the excludes leave out would fail only in AWS, at its first event. Imported here from the
    staged asset alone (python -I: no repo, no PYTHONPATH), with boto3 as the Lambda runtime has it."""
    import subprocess
    import sys

    stack, template = stack_template
    (function,) = [
        f
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "inference.efs_sync.handler"
    ]
    asset = Path(stack.node.root.outdir) / f"asset.{function['Properties']['Code']['S3Key'].removesuffix('.zip')}"
    files = sorted(str(p.relative_to(asset)) for p in asset.rglob("*.py"))
    assert files == ["inference/__init__.py", "inference/efs_sync.py", "inference/store_files.py"]
    code = f"import sys; sys.path.insert(0, {str(asset)!r}); import inference.efs_sync as m; print(m.ALLOWED_FILES)"
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "model.int8.onnx" in done.stdout
