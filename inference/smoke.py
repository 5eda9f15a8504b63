"""After ``cdk deploy``: does the stack serve? ``python -m inference.smoke --stack MhistMlops``

With the caller's AWS credentials it reads the stack's outputs (CloudFormation), the API key (API
Gateway) and MLflow's generated credentials (Secrets Manager), then checks what a user needs: both
front doors answer ``/ready`` and predict the bundled image, and MLflow refuses a request without
credentials and accepts the generated ones. One line per check; exit 1 if any failed. MLflow is
reached through ``MlflowUrl`` (published with a certificate) or ``--mlflow-url`` (Session Manager's
port forward); without either it says so, and how.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from inference.annotations import CLASS_NAMES

SMOKE_IMAGE = Path(__file__).with_name("smoke.png")  # a synthetic demo image, not patient data
SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"
LABELS = CLASS_NAMES


@dataclass(frozen=True)
class Stack:
    api: str
    api_key: str
    service: str
    mlflow: str | None
    mlflow_user: str
    mlflow_password: str
    port_forward: str


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool | None  # None: not checked, and the detail says how to
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'not checked' if self.ok is None else 'FAILED':<12}{self.name}: {self.detail}"


def read_stack(name: str, region: str | None) -> Stack:
    import boto3

    session = boto3.Session(region_name=region)
    described = session.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    key = session.client("apigateway").get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)["value"]
    secret = session.client("secretsmanager").get_secret_value(SecretId=outputs["MlflowCredentials"])
    credentials = json.loads(secret["SecretString"])
    return Stack(
        api=outputs["ApiUrl"].removesuffix("/predict"),
        api_key=key,
        service=outputs["ServiceUrl"].removesuffix("/predict"),
        mlflow=outputs.get("MlflowUrl"),
        mlflow_user=credentials["username"],
        mlflow_password=credentials["password"],
        port_forward=outputs["MlflowPortForward"],
    )


def call(
    url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None, timeout_s: float = 30
) -> tuple[int, object]:
    """(status, JSON or text) of one request; a connection that fails raises OSError with the reason."""
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")[:200]


def _explain(url: str, status: int, answer: object) -> str:
    error = answer.get("error") if isinstance(answer, dict) else None
    reason = f"{error.get('code')}: {error.get('message')}" if isinstance(error, dict) else str(answer)[:200]
    return f"{url} answered {status}: {reason}"


def front_door(name: str, base: str, headers: dict[str, str], image: bytes, timeout_s: float) -> list[Check]:
    checks = []
    try:
        status, ready = call(f"{base}/ready", headers=headers, timeout_s=timeout_s)
        if status == 200 and isinstance(ready, dict) and ready.get("status") == "ready":
            checks.append(Check(f"{name} /ready", True, f"serves {ready.get('model')} ({ready.get('model_version')})"))
        else:
            checks.append(Check(f"{name} /ready", False, _explain(f"{base}/ready", status, ready)))
        status, answer = call(
            f"{base}/predict", body=image, headers={**headers, "Content-Type": "image/png"}, timeout_s=timeout_s
        )
    except OSError as error:
        return [*checks, Check(f"{name}", False, f"cannot reach {base} ({getattr(error, 'reason', error)})")]
    probability = answer.get("probability") if isinstance(answer, dict) else None
    if status == 200 and isinstance(probability, float) and 0 <= probability <= 1 and answer.get("label") in LABELS:
        checks.append(Check(f"{name} /predict", True, f"P(SSA) {probability:.3f}, {answer['label']}"))
    else:
        checks.append(Check(f"{name} /predict", False, _explain(f"{base}/predict", status, answer)))
    return checks


def tracking(stack: Stack, url: str | None, timeout_s: float) -> list[Check]:
    if url is None:
        how = f"run `{stack.port_forward}` and pass --mlflow-url http://127.0.0.1:5000"
        return [Check("MLflow", None, f"no MlflowUrl output (published only with certificate_arn); {how}")]
    base = url.rstrip("/")
    token = base64.b64encode(f"{stack.mlflow_user}:{stack.mlflow_password}".encode()).decode()
    try:
        anonymous, _ = call(base + SEARCH, timeout_s=timeout_s)
        signed_in, answer = call(base + SEARCH, headers={"Authorization": f"Basic {token}"}, timeout_s=timeout_s)
    except OSError as error:
        return [Check("MLflow", False, f"cannot reach {base} ({getattr(error, 'reason', error)})")]
    return [
        Check("MLflow without credentials", anonymous == 401, f"answered {anonymous} (401 expected)"),
        Check(
            "MLflow with the generated credentials",
            signed_in == 200,
            f"answered {signed_in}" + ("" if signed_in == 200 else f": {str(answer)[:200]}"),
        ),
    ]


def run(stack: Stack, *, image: bytes, mlflow_url: str | None, timeout_s: float) -> list[Check]:
    return [
        *front_door("Lambda API", stack.api, {"x-api-key": stack.api_key}, image, timeout_s),
        *front_door("EC2 service", stack.service, {}, image, timeout_s),
        *tracking(stack, mlflow_url or stack.mlflow, timeout_s),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="MhistMlops", help="the CloudFormation stack (cdk.json stack_name)")
    parser.add_argument("--region", help="its region (default: the AWS CLI's)")
    parser.add_argument("--mlflow-url", help="MLflow through Session Manager's port forward: http://127.0.0.1:5000")
    parser.add_argument("--image", type=Path, default=SMOKE_IMAGE, help="the image to predict (PNG)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds per request (a cold Lambda takes some)")
    args = parser.parse_args(argv)
    try:
        image = args.image.read_bytes()
    except OSError as error:
        parser.error(f"--image {args.image}: {error.strerror}")
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stack = read_stack(args.stack, args.region)
    except (BotoCoreError, ClientError) as error:
        print(f"error: cannot read stack {args.stack}: {error}", file=sys.stderr)
        return 2
    except KeyError as error:
        print(f"error: stack {args.stack} has no output {error}: is it the MHIST stack, deployed?", file=sys.stderr)
        return 2
    checks = run(stack, image=image, mlflow_url=args.mlflow_url, timeout_s=args.timeout)
    for check in checks:
        print(check.line())
    passed, unchecked = sum(c.ok is True for c in checks), sum(c.ok is None for c in checks)
    print(f"{passed} of {len(checks)} checks passed" + (f", {unchecked} not checked" if unchecked else ""))
    return 0 if passed + unchecked == len(checks) else 1


if __name__ == "__main__":
    sys.exit(main())
