"""The MLflow tracking server as the EC2 instance runs it, for real on 127.0.0.1: PostgreSQL
backend, S3 artifacts (moto's server mode stands in for AWS S3, the edge that cannot exist
here), artifacts proxied so the training client needs no S3 credentials."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import boto3
import psycopg2
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.servers import S3_KEYS, free_port, postgres_cluster, process, s3_server
from training.fit import main
from training.onnx_export import read_metadata

pytestmark = pytest.mark.slow
SCRIPT = REPO / "infra_stack" / "assets" / "mlflow_server.sh"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    base = tmp_path_factory.mktemp("tracking")
    mlflow_port = free_port()
    env = {**os.environ, **S3_KEYS}
    with postgres_cluster() as database, s3_server(base / "s3.log") as s3_url:
        s3 = boto3.client("s3", endpoint_url=s3_url, **{k.lower(): v for k, v in S3_KEYS.items() if "KEY" in k})
        s3.create_bucket(Bucket="mlflow-artifacts")
        server_env = {
            **env,
            "PATH": f"{BIN}:{os.environ['PATH']}",
            "MLFLOW_S3_ENDPOINT_URL": s3_url,
            "MLFLOW_BACKEND_STORE_URI": database.replace("postgresql://", "postgresql+psycopg2://"),
            "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow-artifacts/mlflow",
            "MLFLOW_PORT": str(mlflow_port),
            "MLFLOW_WORKERS": "1",
        }
        url = f"http://127.0.0.1:{mlflow_port}"
        with process(["bash", str(SCRIPT)], f"{url}/health", server_env, base / "mlflow.log"):
            yield {"url": url, "database": database, "s3": s3, "base": base}


def test_fit_logs_through_the_server_into_postgres_and_s3(tracking, small_root: Path, monkeypatch) -> None:  # noqa: ANN001
    for key in [*S3_KEYS, "MLFLOW_S3_ENDPOINT_URL"]:
        monkeypatch.delenv(key, raising=False)  # the client has no S3 access: the server proxies
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking["url"])
    args = ["--config", "demo-mlp.yaml", "--data.root", str(small_root), "--data.num_workers", "0",
            "--trainer.default_root_dir", str(tracking["base"] / "out"), "--trainer.max_epochs", "2",
            "--trainer.enable_progress_bar", "false"]  # fmt: skip
    trainer = main(args)
    run_id = trainer.logger.run_id
    client = MlflowClient(tracking["url"])
    run = client.get_run(run_id)
    assert run.data.params["model.lr"] == "0.0003"
    assert "test/auroc" in run.data.metrics
    assert len(client.get_metric_history(run_id, "val/loss")) == 2
    local = client.download_artifacts(run_id, "model/model.onnx", str(tracking["base"] / "dl"))
    assert read_metadata(Path(local))["mlflow_run_id"] == run_id

    with psycopg2.connect(tracking["database"]) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
        assert cursor.fetchone() == ("FINISHED",)
        cursor.execute("SELECT count(*) FROM params WHERE run_uuid = %s", (run_id,))
        assert cursor.fetchone()[0] > 20
    keys = [o["Key"] for o in tracking["s3"].list_objects_v2(Bucket="mlflow-artifacts")["Contents"]]
    assert any(key.endswith(f"{run_id}/artifacts/model/model.onnx") for key in keys)
    assert any(key.endswith(f"{run_id}/artifacts/model/model.int8.onnx") for key in keys)

    # A resumed fit appends to the same run on the server.
    resumed = main([*args[:-4], "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false",
                    "--resume", run_id])  # fmt: skip
    assert resumed.logger.run_id == run_id
    assert [m.step for m in client.get_metric_history(run_id, "val/loss")] == [0, 1, 2]


def test_script_refuses_stores_it_was_not_written_for(tmp_path: Path) -> None:
    import subprocess

    env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": "sqlite:///x.db", "MLFLOW_ARTIFACTS_DESTINATION": "s3://b/p"}
    result = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "must be a postgresql:// URI" in result.stderr
