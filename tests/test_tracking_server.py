"""The MLflow tracking server as the EC2 instance runs it, for real on 127.0.0.1: its configuration
written by the instance's own ``mlflow_config.sh`` from (stand-in) Secrets Manager secrets, a
PostgreSQL backend that takes TLS connections only (as RDS with ``rds.force_ssl``), verified against
the authority that signed it, S3 artifacts (moto's server mode stands in for AWS S3), artifacts
proxied so the training client needs no S3 credentials, and MLflow's basic-auth app in front.
AWS itself cannot exist here: the ``aws`` CLI and S3 are the only stand-ins."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg2
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from tests.servers import S3_KEYS, Postgres, certificate_authority, free_port, postgres_cluster, process, s3_server
from training.fit import main
from training.onnx_export import read_metadata

pytestmark = pytest.mark.slow
ASSETS = REPO / "infra_stack" / "assets"
BIN = Path(sys.executable).parent
ADMIN = {"username": "admin", "password": "admin-password-under-test"}
DB_SECRET, ADMIN_SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db", "arn:aws:secretsmanager:x:admin"
AWS_CLI_STAND_IN = """#!{python}
# The AWS CLI's `secretsmanager get-secret-value --query SecretString --output text`, nothing else.
import json, sys
args = sys.argv[1:]
if args[:2] != ["secretsmanager", "get-secret-value"] or args[-4:] != ["--query", "SecretString", "--output", "text"]:
    sys.exit(f"aws stand-in: {{args}} is not what mlflow_config.sh asks")
print(json.dumps(json.load(open({secrets!r}))[args[args.index("--secret-id") + 1]]))
"""


def write_config(base: Path, database: Postgres, port: int, *, ca: Path | None = None) -> dict[str, str]:
    """Run mlflow_config.sh as the boot runs it; the server's environment from the mlflow.env it writes."""
    secrets = base / "secrets.json"
    db_secret = {"username": "mlflow", "password": database.password, "host": database.host, "port": database.port}
    secrets.write_text(json.dumps({DB_SECRET: db_secret, ADMIN_SECRET: ADMIN}))
    stand_in = base / "bin" / "aws"
    stand_in.parent.mkdir(exist_ok=True)
    stand_in.write_text(AWS_CLI_STAND_IN.format(python=sys.executable, secrets=str(secrets)))
    stand_in.chmod(0o755)
    etc = base / "etc"
    env = {
        "PATH": f"{stand_in.parent}:{os.environ['PATH']}",
        "DB_SECRET_ARN": DB_SECRET,
        "ADMIN_SECRET_ARN": ADMIN_SECRET,
        "DB_HOST": database.host,
        "DB_PORT": str(database.port),
        "CA_BUNDLE": str(ca or database.ca),
        "MLFLOW_ETC": str(etc),
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://mlflow-artifacts/mlflow",
        "MLFLOW_HOST": "127.0.0.1",
        "MLFLOW_PORT": str(port),
        "MLFLOW_ALLOWED_HOSTS": f"127.0.0.1:{port},localhost:{port}",
        "MLFLOW_BIN": str(BIN / "mlflow"),
    }
    subprocess.run(["bash", str(ASSETS / "mlflow_config.sh")], env=env, check=True, capture_output=True, timeout=60)
    lines = (etc / "mlflow.env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line)


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    base = tmp_path_factory.mktemp("tracking")
    mlflow_port = free_port()
    with postgres_cluster() as database, s3_server(base / "s3.log") as s3_url:
        s3 = boto3.client("s3", endpoint_url=s3_url, **{k.lower(): v for k, v in S3_KEYS.items() if "KEY" in k})
        s3.create_bucket(Bucket="mlflow-artifacts")
        config = write_config(base, database, mlflow_port)
        server_env = {**os.environ, **S3_KEYS, **config, "MLFLOW_S3_ENDPOINT_URL": s3_url, "MLFLOW_WORKERS": "1"}
        url = f"http://127.0.0.1:{mlflow_port}"
        with process(["bash", str(ASSETS / "mlflow_server.sh")], f"{url}/health", server_env, base / "mlflow.log"):
            yield {"url": url, "database": database, "s3": s3, "base": base, "config": config}


def test_fit_logs_through_the_server_into_postgres_and_s3(
    tracking: dict, small_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [*S3_KEYS, "MLFLOW_S3_ENDPOINT_URL"]:
        monkeypatch.delenv(key, raising=False)  # the client has no S3 access: the server proxies
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking["url"])
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN["username"])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN["password"])
    args = [
        "--config",
        "demo-mlp.yaml",
        "--data.root",
        str(small_root),
        "--data.num_workers",
        "0",
        "--trainer.default_root_dir",
        str(tracking["base"] / "out"),
        "--trainer.max_epochs",
        "2",
        "--trainer.enable_progress_bar",
        "false",
    ]
    trainer = main(args)
    run_id = trainer.logger.run_id
    client = MlflowClient(tracking["url"])
    run = client.get_run(run_id)
    assert run.data.params["model.optimizer.init_args.lr"] == "0.0003"
    assert "test/auroc" in run.data.metrics
    assert len(client.get_metric_history(run_id, "val/loss")) == 2
    local = client.download_artifacts(run_id, "model/model.onnx", str(tracking["base"] / "dl"))
    assert read_metadata(Path(local))["mlflow_run_id"] == run_id

    with tracking["database"].connect() as connection, connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_uuid = %s", (run_id,))
        assert cursor.fetchone() == ("FINISHED",)
        cursor.execute("SELECT count(*) FROM params WHERE run_uuid = %s", (run_id,))
        assert cursor.fetchone()[0] > 20
    keys = [o["Key"] for o in tracking["s3"].list_objects_v2(Bucket="mlflow-artifacts")["Contents"]]
    assert any(key.endswith(f"{run_id}/artifacts/model/model.onnx") for key in keys)
    assert any(key.endswith(f"{run_id}/artifacts/model/model.int8.onnx") for key in keys)

    # A resumed fit appends to the same run on the server.
    resumed = main(
        [*args[:-4], "--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false", "--resume", run_id]
    )
    assert resumed.logger.run_id == run_id
    assert [m.step for m in client.get_metric_history(run_id, "val/loss")] == [0, 1, 2]


def test_every_request_but_health_needs_the_generated_credentials(tracking: dict) -> None:
    search = f"{tracking['url']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, timeout=30).status_code == 401
    assert requests.get(search, auth=(ADMIN["username"], "guessed"), timeout=30).status_code == 401
    answer = requests.get(search, auth=(ADMIN["username"], ADMIN["password"]), timeout=30)
    assert answer.status_code == 200
    assert "experiments" in answer.json()
    assert requests.get(f"{tracking['url']}/health", timeout=30).status_code == 200  # the load balancer's check


def test_no_secret_is_on_a_command_line_and_their_files_are_private(tracking: dict) -> None:
    """``ps`` shows every process's arguments to every user of the machine."""
    secrets = [tracking["database"].password.encode(), ADMIN["password"].encode()]
    seen = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            arguments = cmdline.read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        seen += b"mlflow" in arguments
        assert not any(secret in arguments for secret in secrets), arguments.replace(b"\0", b" ")[:300]
    assert seen >= 2  # the server and its worker were looked at
    assert "@" in tracking["config"]["MLFLOW_BACKEND_STORE_URI"]
    assert ":" not in tracking["config"]["MLFLOW_BACKEND_STORE_URI"].split("//", 1)[1].split("@")[0]
    for name in ("pgpass", "basic_auth.ini", "mlflow.env"):
        assert stat.S_IMODE((tracking["base"] / "etc" / name).stat().st_mode) == 0o600


def test_database_connections_use_tls(tracking: dict) -> None:
    with tracking["database"].connect() as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.application_name, s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
            "WHERE a.client_addr IS NOT NULL"
        )
        connections = cursor.fetchall()
    assert len(connections) >= 2  # the server's pool and this query
    assert all(ssl for _, ssl in connections)


def test_a_database_certificate_from_another_authority_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify-full really verifies: the store URI mlflow_config.sh writes, with a CA bundle that did not sign
    the server's certificate, is refused by libpq (what MLflow connects through) before any password."""
    with postgres_cluster() as database:
        stranger = certificate_authority(tmp_path / "other", "127.0.0.1", "a stranger").ca
        config = write_config(tmp_path, database, free_port(), ca=stranger)
        monkeypatch.setenv("PGPASSFILE", config["PGPASSFILE"])
        uri = config["MLFLOW_BACKEND_STORE_URI"].replace("postgresql+psycopg2://", "postgresql://")
        assert "sslmode=verify-full" in uri
        with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
            psycopg2.connect(uri, connect_timeout=10)
        write_config(tmp_path, database, free_port())  # the authority that signed it: accepted
        psycopg2.connect(uri.replace(str(stranger), str(database.ca)), connect_timeout=10).close()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MLFLOW_BACKEND_STORE_URI": "sqlite:///x.db"}, "must be a postgresql:// URI"),
        ({"MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow:hunter2@db:5432/mlflow"}, "holds a password"),
        ({"MLFLOW_AUTH_CONFIG_PATH": ""}, "MLFLOW_AUTH_CONFIG_PATH"),
        ({"MLFLOW_AUTH_CONFIG_PATH": "/nonexistent/basic_auth.ini"}, "is not a readable file"),
    ],
)
def test_script_refuses_what_it_was_not_written_for(change: dict[str, str], message: str) -> None:
    env = {
        **os.environ,
        "MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow@db:5432/mlflow",
        "MLFLOW_ARTIFACTS_DESTINATION": "s3://b/p",
        "MLFLOW_AUTH_CONFIG_PATH": str(ASSETS / "mlflow_server.sh"),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "k",
        **change,
    }
    result = subprocess.run(
        ["bash", str(ASSETS / "mlflow_server.sh")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert message in result.stderr
