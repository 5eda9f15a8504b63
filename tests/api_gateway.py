"""A stand-in for API Gateway's REST API in front of the Lambda handler, on 127.0.0.1 (AWS itself
cannot exist here): it refuses a missing or wrong ``x-api-key`` with API Gateway's own 403 body,
and turns every other request into a REST (v1) proxy event for ``inference.lambda_handler``.

    python -m tests.api_gateway PORT API_KEY      # MODEL_ROOT and MODEL_NAME in the environment
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from http.server import ThreadingHTTPServer
from types import SimpleNamespace

from tests.servers import JsonHandler

STAGE = "prod"
UP = "/stand-in/up"  # answers without a key, for whoever waits for the stand-in to start


def serve(port: int, api_key: str) -> None:
    from inference import lambda_handler  # the model loads here, as in Lambda's init phase

    class Gateway(JsonHandler):
        def _proxy(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == UP:
                return self.answer(200, {"stand_in": "up"})
            if self.headers.get("x-api-key") != api_key:
                return self.answer(403, {"message": "Forbidden"})
            path = self.path.split("?", 1)[0].removeprefix(f"/{STAGE}")
            event = {
                "resource": path,
                "path": path,
                "httpMethod": self.command,
                "headers": dict(self.headers),
                "multiValueHeaders": {k: [v] for k, v in self.headers.items()},
                "requestContext": {"stage": STAGE, "path": self.path, "requestId": str(uuid.uuid4())},
                "body": base64.b64encode(body).decode() if body else None,
                "isBase64Encoded": bool(body),
            }
            context = SimpleNamespace(
                function_name="mhist-predict",
                memory_limit_in_mb=3008,
                aws_request_id=str(uuid.uuid4()),
                invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:p",
            )
            result = lambda_handler.handler(event, context)
            return self.answer(result["statusCode"], json.loads(result["body"]))

        do_GET = do_POST = _proxy  # noqa: N815 - http.server's names

    ThreadingHTTPServer(("127.0.0.1", port), Gateway).serve_forever()


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2])
