"""The EC2 service under load: real gunicorn on 127.0.0.1 against the raw predictor, same cores.

    python -m bench.serving --models vit_base_patch16_224 mlp --variant int8 --concurrency 1 2 4 8 --layouts 1x2 2x1

Two configurations (``--configs``): ``today``, the service before issue 20 (dynamic int8 in
onnxruntime, every request its own run, gunicorn's 2 threads a worker), and ``batched`` (static
int8 in ``--runtime``, by default the image's ``auto``, requests gathered for up to
``BATCH_WAIT_MS`` into one run, a thread per image of a run). Goals for
``batched`` against ``today`` in the same run: at least 1.3x the throughput at the most clients
(the median of the rounds' paired slices), p50 at one client within 5%.

For each gunicorn layout (workers x threads; ``inference/gunicorn_conf.py``'s default first) the
service runs under a closed-loop load generator: ``c`` clients, each sending the next PNG as soon
as its answer arrives. It is compared with the raw predictor in the same layout: one in-process
``Predictor`` per worker with that worker's share of the cores, called by as many callers as the
service could run at once. Goals: p50 at concurrency 1 within 10 ms of the raw predictor;
throughput at saturation at least 90% of the raw predictor's; zero failed requests.

All configurations and layouts of a model are up at once (an idle service costs memory only), and
each level is measured in rounds of slices that alternate between them (the order reversed every
other round), so that ``batched`` against ``today`` compares the same minutes of this VM, not two
runs minutes apart. Where one worker gathers, each level records the images per graph run.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    BATCHED_P50_GOAL,
    BATCHED_THROUGHPUT_GOAL,
    P50_OVERHEAD_GOAL_MS,
    SATURATION_GOAL,
    SERVING_HEADERS,
    add_output_arguments,
    at_least,
    batched_against_today,
    describe,
    dynamic_int8_store,
    markdown_table,
    model_store,
    positive_seconds,
    publish,
    sample_png,
    serving_cells,
    summary_ms,
)
from inference.batching import Batching
from inference.cores import DEFAULT_THREADS, default_workers, session_threads
from inference.predictor import Predictor, resolve_model_path
from inference.runtimes import Runtime
from tests.servers import gunicorn, nginx_proxy

Call = Callable[[dict], "str | None"]  # one request from a client (its state): an error text, or None


@dataclass(frozen=True)
class Layout:
    """gunicorn workers x threads per worker; each worker's session gets cores / workers threads."""

    workers: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Layout:
        workers, sep, threads = text.partition("x")
        if not (sep and workers.isdigit() and threads.isdigit() and int(workers) > 0 and int(threads) > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is not WORKERSxTHREADS, e.g. 1x2")
        return cls(int(workers), int(threads))

    def __str__(self) -> str:
        return f"{self.workers}x{self.threads}"


@dataclass(frozen=True)
class Config:
    """What the service is run with: the int8 file's quantization, its runtime and request batching."""

    label: str
    quantization: str  # "dynamic" (a store of its own, bench.common.dynamic_int8_store) or "static"
    batch_wait_ms: float
    threads: int  # gunicorn threads a worker unless --layouts says otherwise
    runtime: Runtime | None = None  # MODEL_RUNTIME; None: --runtime's

    @property
    def batching(self) -> Batching:
        return Batching(wait_ms=self.batch_wait_ms)


CONFIGS = {
    "today": Config("today", "dynamic", 0.0, DEFAULT_THREADS, "onnxruntime"),
    "batched": Config("batched", "static", 5.0, Batching().max_images),
}


@dataclass
class Load:
    """What one closed loop measured; slices of the same load, interleaved with others, add up."""

    concurrency: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "concurrency": self.concurrency,
            "requests": len(self.latencies),
            "failures": len(self.failures),
            "failure_examples": sorted(set(self.failures))[:3],
            "throughput_per_s": len(self.latencies) / self.seconds if self.seconds else 0.0,
            **summary_ms(self.latencies),
        }


def closed_loop(call: Call, concurrency: int, seconds: float, load: Load | None = None) -> Load:
    """``concurrency`` threads each calling ``call`` back to back until ``seconds`` pass, added to ``load``."""
    load = load if load is not None else Load(concurrency)
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
                (load.failures.append(error) if error else load.latencies.append(elapsed))

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    load.seconds += time.perf_counter() - started
    return load


def predictor_call(predictors: list[Predictor], png: bytes) -> Call:
    """The raw predictors as a load-generator call (no HTTP, no Flask, same image); each client
    keeps to one predictor, as a request keeps to one gunicorn worker."""
    assign = itertools.cycle(predictors)

    def call(state: dict) -> None:
        state.setdefault("predictor", next(assign)).predict([png])

    return call


def http_call(base_url: str, png: bytes, server_ms: list[float]) -> Call:
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


@dataclass
class Setup:
    """One configuration in one layout, its service up: what a level's slices call, and what they measured."""

    config: Config
    layout: Layout
    path: Path
    runtime: Runtime
    threads: int
    predictors: list[Predictor]
    raw: Call  # the raw predictors as a client's call
    base_url: str
    served: str  # the runtime the service's worker reports
    levels: list[dict] = field(default_factory=list)

    @property
    def at_once(self) -> int:
        """Requests the service can run at once: more raw callers than these would only queue."""
        return self.layout.workers * self.layout.threads


@dataclass
class Tally:
    """What one setup's slices of one level measured, added up over the rounds."""

    service: Load
    raw: Load
    server_ms: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    slices: list[float] = field(default_factory=list)  # the service's requests per second in each round
    runs: int = 0  # graph runs and the images in them, where the service's one worker reports them
    images: int = 0

    def images_per_run(self) -> float | None:
        return self.images / self.runs if self.runs else None


def start(
    name: str, store: Path, config: Config, layout: Layout, args: argparse.Namespace, work: Path, stack: ExitStack
) -> Setup:
    """The raw predictors and the service (behind nginx unless ``--no-proxy``) of one configuration, warmed."""
    path = resolve_model_path(store, name, args.variant)
    threads = session_threads(layout.workers)  # as each gunicorn worker's session gets
    runtime = config.runtime or args.runtime
    predictors = [
        Predictor.load(path, threads=threads, batching=config.batching, runtime=runtime) for _ in range(layout.workers)
    ]
    env = {
        "MODEL_NAME": name,
        "MODEL_VARIANT": args.variant,
        "WEB_CONCURRENCY": str(layout.workers),
        "GUNICORN_THREADS": str(layout.threads),
        "BATCH_WAIT_MS": str(config.batch_wait_ms),
        "MODEL_RUNTIME": runtime,
        "LOG_LEVEL": "warning",
    }
    context, base_url = gunicorn(store, work / f"{name}-{config.label}-{layout}.log", **env)
    stack.enter_context(context)
    if args.proxy:  # as deployed: the clients meet nginx, nginx meets gunicorn
        proxy, base_url = nginx_proxy(base_url, work / f"{name}-{config.label}-{layout}-nginx.log")
        stack.enter_context(proxy)
    png = sample_png()
    closed_loop(http_call(base_url, png, []), max(args.concurrency), min(args.seconds, 3.0))  # warm all workers
    raw = predictor_call(predictors, png)
    return Setup(config, layout, path, runtime, threads, predictors, raw, base_url, served_runtime(base_url))


def measure_levels(setups: list[Setup], args: argparse.Namespace) -> None:
    """Every level of every setup, in slices that alternate between setups and, within each, between the
    service and its raw predictor (half the service's time): this VM's speed drifts 20% within minutes,
    so configurations compared with each other, and each with its raw predictor, see the same minutes."""
    png = sample_png()
    for concurrency in args.concurrency:
        tallies = [Tally(Load(concurrency), Load(min(concurrency, setup.at_once))) for setup in setups]
        for round_ in range(args.rounds):
            pairs = list(zip(setups, tallies, strict=True))
            for setup, tally in pairs[:: -1 if round_ % 2 else 1]:  # in turn first: none always follows another
                closed_loop(setup.raw, tally.raw.concurrency, args.seconds / args.rounds / 2, tally.raw)
                before = gathered(setup)
                cpu_started = time.process_time()
                service = http_call(setup.base_url, png, tally.server_ms)
                served, seconds = len(tally.service.latencies), tally.service.seconds
                closed_loop(service, concurrency, args.seconds / args.rounds, tally.service)
                tally.client_cpu_s += time.process_time() - cpu_started
                tally.slices.append((len(tally.service.latencies) - served) / (tally.service.seconds - seconds))
                if before is not None and (after := gathered(setup)) is not None:
                    tally.runs, tally.images = tally.runs + after[0] - before[0], tally.images + after[1] - before[1]
        for setup, tally in zip(setups, tallies, strict=True):
            level, baseline = tally.service.summary(), tally.raw.summary()
            level.update(
                client_cpu_share=tally.client_cpu_s / tally.service.seconds,
                raw_per_s=baseline["throughput_per_s"],
                raw_p50_ms=baseline["p50_ms"],
                raw_callers=tally.raw.concurrency,
                server_p50_ms=statistics.median(tally.server_ms) if tally.server_ms else float("nan"),
                images_per_run=tally.images_per_run(),
                slice_throughputs=tally.slices,
            )
            setup.levels.append(level)
            print(
                f"{setup.path.parent.name} {setup.config.label} {setup.layout} c={concurrency}: "
                f"{level['throughput_per_s']:.1f}/s p50 {level['p50_ms']:.1f} ms (raw {level['raw_per_s']:.1f}/s) "
                f"failures {level['failures']}"
                + (f", {level['images_per_run']:.2f} images per run" if level["images_per_run"] else ""),
                flush=True,
            )


def outcome(name: str, setup: Setup, args: argparse.Namespace) -> dict:
    first, last = setup.levels[0], setup.levels[-1]
    return {
        "model": name,
        "variant": args.variant,
        "file": setup.path.name,
        "layout": str(setup.layout),
        "proxy": args.proxy,
        "config": setup.config.label,
        "quantization": setup.config.quantization,
        "batch_wait_ms": setup.config.batch_wait_ms,
        "runtime_setting": setup.runtime,
        "runtime": setup.served,
        "raw_runtime": sorted({p.graph.runtime for p in setup.predictors}),
        "workers": setup.layout.workers,
        "threads": setup.layout.threads,
        "session_threads": setup.threads,
        "levels": setup.levels,
        "p50_overhead_ms": first["p50_ms"] - first["raw_p50_ms"],
        "saturation_ratio": last["throughput_per_s"] / last["raw_per_s"],
        "failures": sum(level["failures"] for level in setup.levels),
    }


def bench_model(name: str, stores: dict[str, Path], args: argparse.Namespace, work: Path) -> list[dict]:
    """Every configuration and layout of one model, all up at once and measured in alternating slices."""
    with ExitStack() as stack:
        setups = [
            start(name, stores[config.quantization], config, layout, args, work, stack)
            for config in (CONFIGS[label] for label in args.configs)
            for layout in args.layouts or [Layout(default_workers(), config.threads)]
        ]
        measure_levels(setups, args)
    return [outcome(name, setup, args) for setup in setups]


def metadata(base_url: str) -> dict:
    """``/metadata`` from whichever of the service's workers answers."""
    host, port = base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("GET", "/metadata")
        return json.loads(connection.getresponse().read())
    finally:
        connection.close()


def served_runtime(base_url: str) -> str:
    """What the service's worker that answers says it runs (``auto`` measures at each worker's load)."""
    return metadata(base_url)["runtime"]


def gathered(setup: Setup) -> tuple[int, int] | None:
    """The gatherer's graph runs and images so far; None unless one worker gathers (two workers' counts,
    read from whichever answers, do not subtract)."""
    if setup.layout.workers != 1 or not setup.config.batch_wait_ms:
        return None
    report = metadata(setup.base_url)["batching"]
    return report["total_runs"], report["total_images"]


def markdown(result: dict) -> str:
    parts = [
        f"gunicorn on 127.0.0.1{' behind nginx (inference/proxy.py)' if result['proxy'] else ''}, "
        f"{result['seconds']:.0f} s per level in {result['rounds']} slices, on "
        f"{describe(result['machine'])}, {result['machine']['date']}. `layout`: gunicorn workers x threads, each "
        "worker's session on cores / workers threads; `raw`: the same layout's predictors in-process, in slices "
        "alternating with the service's; `client CPU`: the load generator's share of one core.\n"
    ]
    headers = SERVING_HEADERS
    for m in result["models"]:
        rows = [serving_cells(m, r) for r in m["levels"]]
        verdicts = (
            f"p50 overhead at {m['levels'][0]['concurrency']} client(s) {m['p50_overhead_ms']:.1f} ms (goal <= "
            f"{P50_OVERHEAD_GOAL_MS:.0f}: {'met' if m['p50_overhead_ms'] <= P50_OVERHEAD_GOAL_MS else 'MISSED'}); "
            f"throughput at {m['levels'][-1]['concurrency']} clients {m['saturation_ratio']:.0%} of raw (goal >= "
            f"{SATURATION_GOAL:.0%}: {'met' if m['saturation_ratio'] >= SATURATION_GOAL else 'MISSED'}); failed "
            f"requests {m['failures']} (goal 0: {'met' if m['failures'] == 0 else 'MISSED'})."
        )
        parts += ["", markdown_table(headers, rows), verdicts]
    parts += [comparison(result["models"], model) for model in dict.fromkeys(m["model"] for m in result["models"])]
    return "\n".join(parts) + "\n"


def comparison(measured: list[dict], model: str) -> str:
    """``batched`` against ``today`` for one model, each in its first layout; empty unless both ran."""
    verdict = batched_against_today(measured, model)
    if verdict is None:
        return ""
    few, most = verdict.clients
    return (
        f"\n{model}, batched against today: throughput at {most} clients {verdict.measured} (goal >= "
        f"{BATCHED_THROUGHPUT_GOAL}: {'met' if verdict.throughput_met else 'MISSED'}); p50 at {few} client(s) "
        f"{verdict.p50:.2f}x (goal <= {BATCHED_P50_GOAL}: {'met' if verdict.p50_met else 'MISSED'})."
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["vit_base_patch16_224", "mlp"])
    parser.add_argument("--variant", choices=("auto", "fp32", "int8"), default="int8")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS))
    parser.add_argument(
        "--runtime",
        choices=("auto", "onnxruntime", "openvino"),
        default="auto",
        help="the batched service's MODEL_RUNTIME, the image's default (today's runs onnxruntime), and its raw "
        "predictor's",
    )
    parser.add_argument("--concurrency", nargs="+", type=at_least(1), default=[1, 2, 4, 8])
    parser.add_argument(
        "--layouts",
        nargs="+",
        type=Layout.parse,
        help="gunicorn WORKERSxTHREADS to measure (default: gunicorn_conf.py's for each configuration)",
    )
    parser.add_argument("--seconds", type=positive_seconds, default=30.0, help="service time per concurrency level")
    parser.add_argument("--rounds", type=at_least(1), default=6, help="slices per level, alternating service and raw")
    parser.add_argument(
        "--proxy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="through nginx in front of gunicorn, as deployed (--no-proxy: gunicorn alone)",
    )
    add_output_arguments(parser)
    args = parser.parse_args(argv)
    store = model_store(args.models, args.store).resolve()
    stores = {"static": store, "dynamic": dynamic_int8_store(args.models, store) if "today" in args.configs else store}
    with tempfile.TemporaryDirectory() as tmp:
        models = [result for name in args.models for result in bench_model(name, stores, args, Path(tmp))]
    result = {"seconds": args.seconds, "rounds": args.rounds, "proxy": args.proxy, "models": models}
    return publish(args.out, "serving", result, markdown)


if __name__ == "__main__":
    main()
