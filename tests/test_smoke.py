"""``python -m inference.smoke`` against local stand-ins of a deployed stack's endpoints: the real
gunicorn service, the real Lambda handler behind a stand-in of API Gateway (its key check and 403),
and a real MLflow server with the basic-auth app. The stack's outputs, API key and secret come from
moto's in-process AWS (CloudFormation, API Gateway, Secrets Manager): AWS itself cannot exist here."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from moto import mock_aws

from inference import smoke
from tests.api_gateway import STAGE, UP
from tests.servers import S3_KEYS, free_port, gunicorn, process

KEY = "api-key-under-test-0123456789"
ADMIN = {"username": "admin", "password": "mlflow-admin-under-test"}
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def endpoints(model_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("smoke")
    env = {**os.environ, "MODEL_ROOT": str(model_store), "MODEL_NAME": "mlp-64-32"}
    service, service_url = gunicorn(model_store, base / "gunicorn.log", MODEL_NAME="mlp-64-32")
    api_port, mlflow_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    gateway = process(
        [sys.executable, "-m", "tests.api_gateway", str(api_port), KEY],
        api_url + UP,
        {**env, "PYTHONPATH": str(Path(__file__).parent.parent)},
        base / "gateway.log",
    )
    ini = base / "basic_auth.ini"
    ini.write_text(
        f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{base / 'auth.db'}\n"
        f"admin_username = {ADMIN['username']}\nadmin_password = {ADMIN['password']}\n"
    )
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    command = [
        str(BIN / "mlflow"),
        "server",
        "--app-name",
        "basic-auth",
        "--backend-store-uri",
        f"sqlite:///{base / 'mlflow.db'}",
        "--default-artifact-root",
        str(base / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(mlflow_port),
        "--workers",
        "1",
    ]
    mlflow_env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": "k" * 32}
    with service, gateway, process(command, f"{mlflow_url}/health", mlflow_env, base / "mlflow.log"):
        yield {"api": f"{api_url}/{STAGE}", "service": service_url, "mlflow": mlflow_url}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in S3_KEYS.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def deploy(
    urls: dict[str, str], *, api_key: str = KEY, password: str = ADMIN["password"], mlflow_published: bool = True
) -> None:
    """What `cdk deploy` leaves: the stack's outputs, the API key, the generated MLflow secret."""
    import boto3

    key_id = boto3.client("apigateway").create_api_key(name="clients", value=api_key, enabled=True)["id"]
    secret = boto3.client("secretsmanager").create_secret(
        Name="MlflowAdmin", SecretString=json.dumps({"username": ADMIN["username"], "password": password})
    )["ARN"]
    outputs = {
        "ApiUrl": f"{urls['api']}/predict",
        "ApiKeyId": key_id,
        "ServiceUrl": f"{urls['service']}/predict",
        "MlflowCredentials": secret,
        "MlflowPortForward": "aws ssm start-session --target i-0123 --document-name AWS-StartPortForwardingSession",
    }
    if mlflow_published:
        outputs["MlflowUrl"] = urls["mlflow"]
    template = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName="MhistMlops", TemplateBody=json.dumps(template))


def test_a_serving_stack_passes_every_check(endpoints: dict, aws: None, capsys: pytest.CaptureFixture) -> None:
    deploy(endpoints)
    assert smoke.main(["--stack", "MhistMlops"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ")[0] for line in lines[:-1]] == ["ok"] * 6
    assert any(
        line.endswith("serves mlp-64-32 (" + line.split("(")[-1]) and "Lambda API /ready" in line for line in lines
    )
    assert "EC2 service /predict: P(SSA) " in "\n".join(lines)
    assert lines[-1] == "6 of 6 checks passed"


def test_each_failure_is_named(endpoints: dict, aws: None, capsys: pytest.CaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    deploy({**endpoints, "service": dead}, api_key="another-key-of-twenty-characters", password="not the admin's")
    assert smoke.main(["--stack", "MhistMlops"]) == 1
    out = capsys.readouterr().out
    assert f"FAILED      Lambda API /ready: {endpoints['api']}/ready answered 403: {{'message': 'Forbidden'}}" in out
    assert f"FAILED      EC2 service: cannot reach {dead}" in out
    assert "ok          MLflow without credentials: answered 401" in out
    assert "FAILED      MLflow with the generated credentials: answered 401" in out
    assert out.splitlines()[-1] == "1 of 5 checks passed"


def test_a_private_mlflow_is_not_checked_and_says_how_to_reach_it(
    endpoints: dict, aws: None, capsys: pytest.CaptureFixture
) -> None:
    deploy(endpoints, mlflow_published=False)
    assert smoke.main(["--stack", "MhistMlops"]) == 0
    out = capsys.readouterr().out
    assert "not checked MLflow: no MlflowUrl output" in out
    assert "run `aws ssm start-session --target i-0123" in out
    assert out.splitlines()[-1] == "4 of 5 checks passed, 1 not checked"
    assert smoke.main(["--stack", "MhistMlops", "--mlflow-url", endpoints["mlflow"]]) == 0  # the forwarded port


def test_a_missing_stack_is_one_line(aws: None, capsys: pytest.CaptureFixture) -> None:
    assert smoke.main(["--stack", "Nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot read stack Nope: ")
    assert "Traceback" not in err
