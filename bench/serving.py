"""The EC2 service under load: real gunicorn on 127.0.0.1 against the raw predictor, same cores.

    python -m bench.serving --models vit_base_patch16_224 mlp --variant int8 --concurrency 1 2 4 8

First the raw predictor (``Predictor.predict`` in this process, one and two callers), then the
service as deployed (``inference/gunicorn_conf.py``, its default workers and threads) under a
closed-loop load generator: ``c`` clients, each sending the next PNG as soon as its answer
arrives, for a fixed time. Goals: p50 at concurrency 1 within 10 ms of the raw predictor;
throughput at saturation at least 90% of the raw predictor's; zero failed requests.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import (
    P50_OVERHEAD_GOAL_MS,
    SATURATION_GOAL,
    add_output_arguments,
    describe,
    markdown_table,
    model_store,
    publish,
    sample_png,
    summary_ms,
)
from inference.predictor import Predictor, available_cpus, resolve_model_path
from inference.service import default_workers
from tests.servers import gunicorn


def closed_loop(call, concurrency: int, seconds: float) -> dict:  # noqa: ANN001 - call(client state) -> latency or error
    """``concurrency`` threads each calling ``call`` back to back until ``seconds`` pass."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client() -> None:
        state: dict = {}
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                error = call(state)
            except Exception as exception:  # noqa: BLE001 - every failure is counted, none stops the run
                error, state = f"{type(exception).__name__}: {exception}", {}
            elapsed = time.perf_counter() - started
            with lock:
                (failures.append(error) if error else latencies.append(elapsed))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(latencies), "failures": len(failures),
            "failure_examples": sorted(set(failures))[:3], "throughput_per_s": len(latencies) / elapsed,
            **summary_ms(latencies)}  # fmt: skip


def predictor_call(predictor: Predictor, png: bytes):  # noqa: ANN201
    """The raw predictor as a load-generator call (no HTTP, no Flask, same image)."""

    def call(state: dict) -> None:
        predictor.predict([png])

    return call


def http_call(base_url: str, png: bytes, server_ms: list[float]):  # noqa: ANN201
    """A client with its own keep-alive connection; records the predictor time the server reports."""
    host, port = base_url.removeprefix("http://").split(":")

    def call(state: dict) -> str | None:
        connection = state.setdefault("connection", http.client.HTTPConnection(host, int(port), timeout=60))
        connection.request("POST", "/predict", body=png, headers={"Content-Type": "image/png"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            state.clear()
            return f"HTTP {response.status}: {body[:120]!r}"
        server_ms.append(json.loads(body)["latency_ms"])
        return None

    return call


def bench_model(name: str, variant: str, store: Path, levels: list[int], seconds: float, work: Path) -> dict:
    """Each load level is bracketed by two bursts of the raw predictor (every core, one caller at
    one client, else two), so that it is compared with the machine as it was at that moment: this
    VM's speed drifts. The load generator shares the cores; its CPU use is reported."""
    path = resolve_model_path(store, name, variant)
    png = sample_png()
    predictor = Predictor.load(path, threads=available_cpus())
    raw = predictor_call(predictor, png)
    workers = default_workers()
    context, base_url = gunicorn(store, work / f"{name}.log", MODEL_NAME=name, MODEL_VARIANT=variant,
                                 WEB_CONCURRENCY=str(workers), LOG_LEVEL="warning")  # fmt: skip
    levels_out = []
    with context:
        closed_loop(http_call(base_url, png, []), max(levels), min(seconds, 3.0))  # warm every worker and thread
        for concurrency in levels:
            server_ms: list[float] = []
            callers = min(concurrency, 2)  # a second caller lets decoding overlap inference; more only queue
            before = closed_loop(raw, callers, seconds / 4)
            cpu_started = time.process_time()
            level = closed_loop(http_call(base_url, png, server_ms), concurrency, seconds)
            level["client_cpu_share"] = (time.process_time() - cpu_started) / seconds
            after = closed_loop(raw, callers, seconds / 4)
            level["server_p50_ms"] = statistics.median(server_ms) if server_ms else float("nan")
            level["raw_p50_ms"] = (before["p50_ms"] + after["p50_ms"]) / 2
            level["raw_per_s"] = (before["throughput_per_s"] + after["throughput_per_s"]) / 2
            levels_out.append(level)
            print(f"{name} c={concurrency}: {level['throughput_per_s']:.1f}/s p50 {level['p50_ms']:.1f} ms (raw "
                  f"{level['raw_per_s']:.1f}/s) failures {level['failures']}", flush=True)  # fmt: skip
    first, last = levels_out[0], levels_out[-1]
    return {
        "model": name, "variant": variant, "file": path.name, "workers": workers,
        "levels": levels_out, "p50_overhead_ms": first["p50_ms"] - first["raw_p50_ms"],
        "saturation_ratio": last["throughput_per_s"] / last["raw_per_s"],
        "failures": sum(level["failures"] for level in levels_out),
    }  # fmt: skip


def markdown(result: dict) -> str:
    parts = [
        f"gunicorn on 127.0.0.1, {result['seconds']:.0f} s per level, on {describe(result['machine'])}, "
        f"{result['machine']['date']}. `raw`: the predictor in-process (one caller at one client, two otherwise), "
        "measured just before and after each level; `client CPU`: the load generator's share of one core.\n"
    ]
    headers = ("model", "file", "workers", "clients", "req/s", "p50 ms", "p95 ms", "p99 ms", "server p50 ms",
               "raw req/s", "raw p50 ms", "client CPU", "failures")  # fmt: skip
    for m in result["models"]:
        rows = [
            (m["model"], m["file"], m["workers"], r["concurrency"], r["throughput_per_s"], r["p50_ms"], r["p95_ms"],
             r["p99_ms"], r["server_p50_ms"], r["raw_per_s"], r["raw_p50_ms"], f"{r['client_cpu_share']:.0%}",
             r["failures"])
            for r in m["levels"]
        ]  # fmt: skip
        verdicts = (
            f"p50 overhead at {m['levels'][0]['concurrency']} client(s) {m['p50_overhead_ms']:.1f} ms (goal <= "
            f"{P50_OVERHEAD_GOAL_MS:.0f}: {'met' if m['p50_overhead_ms'] <= P50_OVERHEAD_GOAL_MS else 'MISSED'}); "
            f"throughput at {m['levels'][-1]['concurrency']} clients {m['saturation_ratio']:.0%} of raw (goal >= "
            f"{SATURATION_GOAL:.0%}: {'met' if m['saturation_ratio'] >= SATURATION_GOAL else 'MISSED'}); failed "
            f"requests {m['failures']} (goal 0: {'met' if m['failures'] == 0 else 'MISSED'})."
        )
        parts += ["", markdown_table(headers, rows), verdicts]
    return "\n".join(parts) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit_base_patch16_224", "mlp"])
    parser.add_argument("--variant", choices=("auto", "fp32", "int8"), default="int8")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=20.0, help="per concurrency level")
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    store = model_store(args.models, args.store).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        models = [bench_model(n, args.variant, store, args.concurrency, args.seconds, Path(tmp)) for n in args.models]
    return publish(args.out, "serving", {"seconds": args.seconds, "models": models}, markdown)


if __name__ == "__main__":
    main()
