"""The Lambda handler driven with full API Gateway proxy events, REST (v1) and HTTP API (v2) shapes,
as AWS documents them. AWS itself cannot exist here: the event documents and the context object
stand in for it; the handler, predictor and model are real."""

from __future__ import annotations

import base64
import copy
import importlib
import io
import json
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from aws_lambda_powertools.logging import logger as powertools_logger

from bench.common import sample_png as png

V1_EVENT = {
    "resource": "/predict",
    "path": "/predict",
    "httpMethod": "POST",
    "headers": {
        "Content-Type": "image/png",
        "Host": "abc123.execute-api.us-east-1.amazonaws.com",
        "X-Forwarded-For": "203.0.113.7",
        "x-api-key": "redacted",
    },
    "multiValueHeaders": {"Content-Type": ["image/png"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "abc123",
        "resourceId": "r1",
        "resourcePath": "/predict",
        "httpMethod": "POST",
        "path": "/prod/predict",
        "protocol": "HTTP/1.1",
        "stage": "prod",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
        "requestTimeEpoch": 1428582896000,
        "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0", "apiKey": "redacted"},
    },
    "body": None,
    "isBase64Encoded": True,
}
V2_EVENT = {
    "version": "2.0",
    "routeKey": "POST /predict",
    "rawPath": "/predict",
    "rawQueryString": "",
    "cookies": [],
    "headers": {"content-type": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "abc123",
        "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "abc123",
        "requestId": "JKJaXmPLvHcESHA=",
        "routeKey": "POST /predict",
        "stage": "$default",
        "time": "10/Mar/2020:05:16:23 +0000",
        "timeEpoch": 1583817383220,
        "http": {
            "method": "POST",
            "path": "/predict",
            "protocol": "HTTP/1.1",
            "sourceIp": "203.0.113.7",
            "userAgent": "curl/8.5.0",
        },
    },
    "body": None,
    "isBase64Encoded": False,
}
CONTEXT = SimpleNamespace(
    function_name="mhist-predict",
    memory_limit_in_mb=3008,
    aws_request_id="52fdfc07-2182-154f-163f-5f0f9a621d72",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:mhist-predict",
)


@pytest.fixture(scope="module")
def lambda_module(model_store: Path):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_ROOT", str(model_store))
        patch.setenv("MODEL_NAME", "mlp-64-32")
        patch.setenv("MODEL_CACHE", str(model_store.parent / "lambda-cache"))  # its /tmp, this test's own
        patch.setenv("POWERTOOLS_METRICS_NAMESPACE", "MHIST")
        import inference.lambda_handler as module

        yield importlib.reload(module)  # the module-level init runs with this environment


def v1(body: bytes | str | None, content_type: str = "image/png", path: str = "/predict", method: str = "POST"):
    event = copy.deepcopy(V1_EVENT)
    event["path"], event["httpMethod"], event["resource"] = path, method, path
    event["headers"]["Content-Type"] = content_type
    binary = isinstance(body, bytes)
    event["body"] = base64.b64encode(body).decode() if binary else body
    event["isBase64Encoded"] = binary
    return event


def v2(body: str | None, content_type: str = "application/json", path: str = "/predict", method: str = "POST"):
    event = copy.deepcopy(V2_EVENT)
    event["rawPath"], event["requestContext"]["http"]["method"] = path, method
    event["headers"]["content-type"] = content_type
    event["body"] = body
    return event


def headers_of(response: dict) -> dict[str, str]:
    """A proxy response's headers: REST API responses carry them as multiValueHeaders, HTTP API's as headers."""
    multi = {name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}
    return {**(response.get("headers") or {}), **multi}


def call(module, event: dict) -> tuple[int, dict]:
    response = module.handler(event, CONTEXT)
    assert headers_of(response)["Content-Type"] == "application/json"
    assert response["isBase64Encoded"] is False
    return response["statusCode"], json.loads(response["body"])


def multipart(*images: bytes, boundary: str = "mhist-boundary") -> tuple[bytes, str]:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{i}.png"\r\n'
        f"Content-Type: image/png\r\n\r\n".encode()
        + image
        + b"\r\n"
        for i, image in enumerate(images)
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_v1_binary_png_body(lambda_module) -> None:
    status, answer = call(lambda_module, v1(png(1)))
    assert status == 200
    assert set(answer) >= {"model", "probability", "label", "threshold", "latency_ms"}
    assert answer["model"] == "mlp-64-32"
    assert answer["label"] == ("SSA" if answer["probability"] >= answer["threshold"] else "HP")


def test_v2_json_body_matches_v1(lambda_module) -> None:
    image = png(1)
    _, from_v1 = call(lambda_module, v1(image))
    status, from_v2 = call(lambda_module, v2(json.dumps({"image": base64.b64encode(image).decode()})))
    assert status == 200
    assert from_v2["probability"] == from_v1["probability"]


def test_v2_base64_binary_body_and_batch(lambda_module) -> None:
    event = v2(base64.b64encode(png(2)).decode(), content_type="image/png")
    event["isBase64Encoded"] = True
    assert call(lambda_module, event)[0] == 200
    images = [base64.b64encode(png(i)).decode() for i in range(3)]
    status, answer = call(lambda_module, v2(json.dumps({"images": images}), path="/predict/batch"))
    assert status == 200
    assert len(answer["predictions"]) == 3


def test_health_ready_and_metadata(lambda_module: object) -> None:
    assert call(lambda_module, v1(None, path="/health", method="GET")) == (200, {"status": "ok"})
    status, ready = call(lambda_module, v1(None, path="/ready", method="GET"))
    assert (status, ready["status"], ready["model"]) == (200, "ready", "mlp-64-32")
    assert ready["model_version"]
    status, card = call(lambda_module, v2(None, path="/metadata", method="GET"))
    assert status == 200
    assert card["model_name"] == "mlp-64-32"
    assert "threshold" in card


@pytest.mark.parametrize(
    ("event_kind", "body", "content_type", "status", "code"),
    [
        ("v1", b"", "image/png", 400, "empty_body"),
        ("v1", b"not an image", "image/png", 400, "invalid_image"),
        ("v1", png(3)[:400], "image/png", 400, "invalid_image"),
        ("v2", '{"image": "@@@"}', "application/json", 400, "invalid_base64"),
        ("v2", '{"other": 1}', "application/json", 400, "missing_image"),
        ("v2", "{broken", "application/json", 400, "invalid_json"),
        ("v2", "plain words", "text/plain", 415, "unsupported_media_type"),
        ("v1", b"\x89PNG" + b"0" * (11 * 1024 * 1024), "image/png", 413, "payload_too_large"),
    ],
)
def test_bad_requests_are_4xx_with_codes(lambda_module, event_kind: str, body, content_type, status, code) -> None:
    event = (v1 if event_kind == "v1" else v2)(body, content_type=content_type)
    got_status, document = call(lambda_module, event)
    assert got_status == status
    assert document["error"]["code"] == code
    assert document["error"]["message"]


def test_unknown_route_is_404(lambda_module) -> None:
    status, document = call(lambda_module, v1(None, path="/admin", method="GET"))
    assert status == 404
    assert document["error"]["code"] == "not_found"


def test_cold_start_is_measured_and_logged_once(lambda_module, capsys) -> None:
    buffer = io.StringIO()
    for handler in lambda_module.logger._logger.handlers:  # powertools keeps the stdout of import time
        handler.setStream(buffer)
    powertools_logger.is_cold_start = True  # as a new execution environment starts; this module's is warm
    call(lambda_module, v1(png(5)))
    call(lambda_module, v1(png(5)))
    logs = [json.loads(line) for line in buffer.getvalue().splitlines()]
    requests = [r for r in logs if r.get("message") == "request"]
    assert [r["cold_start"] for r in requests] == [True, False]
    assert requests[0]["init_seconds"] >= 0
    assert all(r["function_name"] == "mhist-predict" for r in requests)  # structured, with the context
    assert all(r["model"] == "mlp-64-32" and r["model_version"] for r in requests)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any("LatencyMs" in r and "_aws" in r for r in emitted)  # CloudWatch EMF


def test_the_same_requests_as_flask(lambda_module: object) -> None:
    """Each was refused or answered differently by the Lambda than by the Flask service."""
    alone = call(lambda_module, v1(png(1)))[1]["probability"]
    body, content_type = multipart(png(1))  # multipart: 415 on Lambda, though the API lists it as binary
    status, answer = call(lambda_module, v1(body, content_type=content_type))
    assert (status, answer["probability"]) == (200, alone)
    body, content_type = multipart(png(1), png(2))
    status, batch = call(lambda_module, v1(body, content_type=content_type, path="/predict/batch"))
    assert status == 200
    assert [p["probability"] for p in batch["predictions"]][0] == alone
    assert batch["latency_ms"] > 0  # batch answers lacked it on Lambda
    only_multi = v1(png(1))
    del only_multi["headers"]["Content-Type"]
    only_multi["multiValueHeaders"] = {"content-type": ["image/png"]}  # an event with only multiValueHeaders
    status, answer = call(lambda_module, only_multi)
    assert (status, answer["probability"]) == (200, alone)
    assert call(lambda_module, v1(png(1), path="/predict/"))[1]["probability"] == alone
    wrapped = "\n".join(textwrap.wrap(base64.b64encode(png(1)).decode(), 76))
    assert call(lambda_module, v2(json.dumps({"image": wrapped})))[1]["probability"] == alone


def test_hostile_bodies_are_4xx(lambda_module: object) -> None:
    for body in ("[" * 100_000, '{"image": ' + "7" * 5000 + "}"):
        status, document = call(lambda_module, v2(body))
        assert (status, document["error"]["code"]) == (400, "invalid_json")
    limit = lambda_module.config.limits.body_limit(batch=False)
    status, document = call(lambda_module, v1(b"\x89PNG" + b"0" * limit))
    assert (status, document["error"]["code"]) == (413, "payload_too_large")


def test_a_wrong_method_is_405_with_allow(lambda_module: object) -> None:
    response = lambda_module.handler(v1(None, path="/predict", method="GET"), CONTEXT)
    assert response["statusCode"] == 405
    assert headers_of(response)["Allow"] == "POST"
    assert json.loads(response["body"])["error"]["code"] == "method_not_allowed"


def test_explain_answers_as_on_ec2(lambda_module: object) -> None:
    status, answer = call(lambda_module, v1(png(1), path="/explain"))
    assert status == 200
    assert answer["probability"] == call(lambda_module, v1(png(1)))[1]["probability"]
    assert (answer["explanation"]["method"], answer["explanation"]["grid"]) == ("occlusion", [7, 7])
    assert call(lambda_module, v1(png(1), path="/explain", method="GET"))[0] == 405


def test_refusals_and_failures_are_counted(lambda_module: object, capsys: pytest.CaptureFixture[str]) -> None:
    """The resolver turns a ServingError into its answer; the request is still measured and counted."""
    capsys.readouterr()
    assert call(lambda_module, v1(b"not an image"))[0] == 400
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    counted = [r for r in emitted if "_aws" in r]
    assert [r["Refusals"] for r in counted if "Refusals" in r] in ([1.0], [[1.0]])  # EMF may list values
    assert any("LatencyMs" in r for r in counted)
    with pytest.MonkeyPatch.context() as patch:  # a bug, not a refusal: a 500 that names no internals
        patch.setattr(lambda_module.holder, "get", lambda: (_ for _ in ()).throw(RuntimeError("a bug")))
        status, document = call(lambda_module, v1(png(1)))
    assert (status, document["error"]["code"]) == (500, "internal_error")
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["Errors"] for r in emitted if "Errors" in r] in ([1.0], [[1.0]])


def test_missing_model_gives_503_naming_the_path(tmp_path: Path) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MODEL_ROOT", str(tmp_path))
        patch.setenv("MODEL_NAME", "absent")
        import inference.lambda_handler as module

        module = importlib.reload(module)
        status, document = call(module, v1(png()))
    assert status == 503
    assert document["error"]["code"] == "model_not_ready"
    assert str(tmp_path / "absent" / "model.onnx") in document["error"]["message"]
    assert document["error"]["message"].count("no model is loaded") == 1
    assert call(module, v1(None, path="/ready", method="GET"))[0] == 503
