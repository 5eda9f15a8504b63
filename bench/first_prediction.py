"""Runs in a fresh process for ``bench.cold_start``: import the Lambda handler, answer requests.

Only the standard library is imported before the handler, so the process pays exactly what a
Lambda cold start pays on our side: interpreter, imports, model load, first prediction. Then a
few warm requests (what a warm invocation bills) and the process's peak memory (what the Lambda's
memory setting must hold). Prints one line ``FIRST_PREDICTION {json}``; everything else on
stdout is the handler's own logging.

    MODEL_ROOT=... MODEL_NAME=... MODEL_VARIANT=int8 python -m bench.first_prediction image.png
"""

import base64
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

WARM_REQUESTS = 5
CONTEXT = SimpleNamespace(
    function_name="mhist-predict",
    memory_limit_in_mb=3008,
    aws_request_id="cold-start-benchmark",
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:mhist-predict",
)


def main() -> None:
    wall_started = time.time()
    body = base64.b64encode(Path(sys.argv[1]).read_bytes()).decode()
    event = {
        "version": "2.0",
        "rawPath": "/predict",
        "routeKey": "$default",
        "requestContext": {"http": {"method": "POST", "path": "/predict"}, "stage": "$default"},  # as AWS sends it
        "headers": {"content-type": "image/png"},
        "body": body,
        "isBase64Encoded": True,
    }
    started = time.perf_counter()
    import inference.lambda_handler as function  # the init phase: imports and the model load

    imports_s = time.perf_counter() - started - function.INIT_SECONDS
    started = time.perf_counter()
    response = function.handler(event, CONTEXT)
    first_request_s = time.perf_counter() - started
    first_answered_at = time.time()
    warm = []
    for _ in range(WARM_REQUESTS):  # what a warm invocation bills
        started = time.perf_counter()
        function.handler(event, CONTEXT)
        warm.append(time.perf_counter() - started)
    from bench.common import peak_rss_mb  # after the timed part: it imports numpy, as the handler already did

    predictor = function.holder.predictor
    print(
        "FIRST_PREDICTION "
        + json.dumps(
            {
                "status": response["statusCode"],
                "main_started_at": wall_started,
                "first_answered_at": first_answered_at,
                "imports_s": imports_s,
                "init_s": function.INIT_SECONDS,
                "load_s": predictor.load_seconds if predictor else None,
                "file": predictor.path.name if predictor else None,
                "first_request_s": first_request_s,
                "warm_request_s": statistics.median(warm),
                "peak_rss_mb": peak_rss_mb(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
