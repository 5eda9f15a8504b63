"""Cold start of the serving process: process start to first prediction, fp32 and int8.

    python -m bench.cold_start --models vit_base_patch16_224 mlp --variants int8 fp32 --repeats 5

Two front doors, each a fresh process per repeat:
- ``lambda``: ``python -m bench.first_prediction`` imports the Lambda handler (init: imports and
  the model load) and answers one API Gateway v2 event. Goal: under 1.5 s for the ViT int8 model,
  so that a Lambda cold start is dominated by AWS, not by us.
- ``gunicorn``: the real EC2 service (``inference/gunicorn_conf.py``) from launch to the first
  200 on ``POST /predict``.
The model files are read from the page cache after the first repeat; on EFS the first read of a
fresh environment is slower, by the file size over EFS throughput.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.common import (
    COLD_START_GOAL_S,
    add_output_arguments,
    at_least,
    describe,
    markdown_table,
    model_store,
    publish,
    sample_png,
)
from tests.servers import free_port, gunicorn_launch

REPO = Path(__file__).resolve().parent.parent
PHASES = ("interpreter_s", "imports_s", "init_s", "load_s", "first_request_s", "warm_request_s", "peak_rss_mb")


def lambda_cold_start(store: Path, name: str, variant: str, image: Path, timeout: float = 120) -> dict:
    """One fresh process: the clock starts before it is created and stops at its first answer."""
    # MODEL_RUNTIME: the Lambda image has no OpenVINO for auto to measure
    env = {
        **os.environ,
        "MODEL_ROOT": str(store),
        "MODEL_NAME": name,
        "MODEL_VARIANT": variant,
        "MODEL_RUNTIME": "onnxruntime",
        "PYTHONPATH": str(REPO),
        "POWERTOOLS_METRICS_NAMESPACE": "MHIST",
    }
    launched = time.time()  # wall clock: the child reports its moments on the same clock
    with subprocess.Popen(
        [sys.executable, "-m", "bench.first_prediction", str(image)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as child:
        for line in child.stdout:
            if line.startswith("FIRST_PREDICTION "):
                report = json.loads(line.split(" ", 1)[1])
                break
        else:
            raise RuntimeError(f"the {name} {variant} process exited without a prediction (code {child.wait()})")
        child.wait(timeout=timeout)
    if report["status"] != 200:
        raise RuntimeError(f"the {name} {variant} handler answered {report['status']}")
    keys = ("imports_s", "init_s", "load_s", "first_request_s", "warm_request_s", "peak_rss_mb", "file")
    moments = {"total_s": report["first_answered_at"] - launched, "interpreter_s": report["main_started_at"] - launched}
    return moments | {k: report[k] for k in keys}


def gunicorn_cold_start(store: Path, name: str, variant: str, png: bytes, log: Path, timeout: float = 120) -> dict:
    """The EC2 service from launch to its first successful prediction (polled every 10 ms)."""
    port = free_port()
    command, env = gunicorn_launch(store, port, MODEL_NAME=name, MODEL_VARIANT=variant, LOG_LEVEL="warning")
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/predict", data=png, headers={"Content-Type": "image/png"}
    )
    launched = time.perf_counter()
    with log.open("w") as handle:
        server = subprocess.Popen(command, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT)
    try:
        while time.perf_counter() - launched < timeout:
            if server.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {server.returncode}; see {log}")
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    if response.status == 200:
                        return {"total_s": time.perf_counter() - launched}
            except (urllib.error.URLError, ConnectionError):  # not listening, or the model not ready (503)
                time.sleep(0.01)
        raise TimeoutError(f"gunicorn gave no prediction within {timeout} s; see {log}")
    finally:
        server.terminate()
        server.wait(timeout=30)


def markdown(result: dict) -> str:
    rows = []
    for r in result["rows"]:
        goal = COLD_START_GOAL_S.get((r["model"], r["variant"])) if r["door"] == "lambda" else None
        verdict = "-" if goal is None else f"< {goal} s: {'met' if r['median_s'] < goal else 'MISSED'}"
        phases = [r.get(key, "-") for key in PHASES]
        rows.append((r["model"], r["variant"], r["door"], r["median_s"], r["max_s"], *phases, verdict))
    headers = (
        "model",
        "variant",
        "front door",
        "median s",
        "max s",
        "interpreter s",
        "imports s",
        "init s",
        "of which load s",
        "first request s",
        "warm request s",
        "peak MB",
        "goal",
    )
    return (
        f"Process start to first prediction, {result['repeats']} fresh processes each, on "
        f"{describe(result['machine'])}, {result['machine']['date']}.\n\n" + markdown_table(headers, rows, digits=2)
    )


def summarize(name: str, variant: str, door: str, runs: list[dict]) -> dict:
    """One table row: median and worst total, and the median of each phase the front door reports."""
    totals = [run["total_s"] for run in runs]
    row = {
        "model": name,
        "variant": variant,
        "door": door,
        "median_s": statistics.median(totals),
        "max_s": max(totals),
        "runs": runs,
    }
    return row | {key: statistics.median(run[key] for run in runs) for key in PHASES if key in runs[0]}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit_base_patch16_224", "mlp"])
    parser.add_argument("--variants", nargs="+", choices=("fp32", "int8"), default=["int8", "fp32"])
    parser.add_argument("--doors", nargs="+", choices=("lambda", "gunicorn"), default=["lambda", "gunicorn"])
    parser.add_argument("--repeats", type=at_least(1), default=5)
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    store = model_store(args.models, args.store).resolve()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        png, image, log = sample_png(), Path(tmp) / "image.png", Path(tmp) / "gunicorn.log"
        image.write_bytes(png)
        for name, variant, door in itertools.product(args.models, args.variants, args.doors):
            runs = [
                lambda_cold_start(store, name, variant, image)
                if door == "lambda"
                else gunicorn_cold_start(store, name, variant, png, log)
                for _ in range(args.repeats)
            ]
            rows.append(summarize(name, variant, door, runs))
            print(f"{name} {variant} {door}: median {rows[-1]['median_s']:.2f} s over {args.repeats}", flush=True)
    return publish(args.out, "cold_start", {"repeats": args.repeats, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
