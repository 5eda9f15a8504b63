"""The comparison report: ViT against MLP, PyTorch against ONNX, Lambda against EC2, from measurements.

    python -m bench.report [--tracking-uri sqlite:///outputs/mlflow.db] [--readme docs/benchmarks.md]

Gathers the latest benchmark results (``bench/results/*.json``) and the newest exported MLflow run
of each model into ``report.md`` and ``report.html`` (plots embedded), logs them to the MLflow
experiment ``mhist-comparison`` as a run of their own, and with ``--readme`` replaces the block
between ``<!-- report:start -->`` and ``<!-- report:end -->`` in docs/benchmarks.md with the summary.
Costs come from measured durations, memory and throughput and from AWS's list prices, which are
named parameters (``Prices``), each overridable on the command line.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from bench.common import (
    BATCHED_P50_GOAL,
    BATCHED_THROUGHPUT_GOAL,
    COLD_START_GOAL_S,
    DATA_WAIT_GOAL,
    INT8_SPEEDUP_GOAL,
    LIBRARY_PROBES,
    OF_FLOOR_GOALS,
    P50_OVERHEAD_GOAL_MS,
    RESULTS,
    RUNTIMES,
    SATURATION_GOAL,
    SERVING_HEADERS,
    TRAINING_HEADERS,
    batched_against_today,
    beaten_peaks,
    describe,
    floor_kind,
    folder,
    is_served,
    markdown_table,
    serving_cells,
    training_cells,
)
from inference.predictor import FILES
from inference.store_files import MODEL_FILES
from inference.tracking import DEFAULT_STORE, sqlite_path, unreadable_store
from infra_stack.settings import StackSettings

BENCHMARKS = ("inference", "cold_start", "serving", "training")
QUALITY = ("auroc", "sensitivity", "specificity", "f1", "mcc")
LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one full vCPU at 1,769 MB, in proportion below and above
README_START, README_END = "<!-- report:start -->", "<!-- report:end -->"


STACK = StackSettings.model_fields  # the deployed stack's defaults: what the prices are for


@dataclass(frozen=True)
class Prices:
    """AWS list prices (us-east-1, on demand, x86) and the deployment's settings that cost depends on."""

    lambda_usd_per_gb_s: float = 0.0000166667
    lambda_usd_per_million_requests: float = 0.20
    api_gateway_usd_per_million_requests: float = 3.50  # REST API, first 333 million a month
    ec2_usd_per_hour: float = 0.08925  # c7i.large, STACK["service_instance_type"]
    lambda_memory_mb: int = STACK["lambda_memory_mb"].default  # the stack's own setting
    cold_start_fraction: float = 0.01  # invocations that pay an init phase (billed since August 2025)

    def problems(self) -> list[str]:
        """Values no cost can come from; each named as its flag."""
        memory, fraction = self.lambda_memory_mb, self.cold_start_fraction
        checks = [
            *(
                (flag(f.name), getattr(self, f.name), getattr(self, f.name) >= 0, "at least 0")
                for f in fields(self)
                if "usd" in f.name
            ),
            (flag("lambda_memory_mb"), memory, 128 <= memory <= 10240, "128..10240, as Lambda allows"),
            (flag("cold_start_fraction"), fraction, 0 <= fraction <= 1, "a fraction, 0..1"),
        ]
        return [f"{name} must be {rule}, got {value}" for name, value, ok, rule in checks if not ok]


def flag(name: str) -> str:
    """The command-line flag of a ``Prices`` field."""
    return f"--{name.replace('_', '-')}"


# --- pure cost arithmetic ------------------------------------------------------------------------


def lambda_vcpus(memory_mb: int) -> float:
    return min(6.0, memory_mb / LAMBDA_MB_PER_VCPU)


def lambda_duration_s(measured_s: float, measured_cpus: int, memory_mb: int) -> float:
    """A duration measured on ``measured_cpus`` cores, on a Lambda of ``memory_mb``: slower in
    proportion where the Lambda has fewer vCPUs (compute-bound work), never assumed faster."""
    return measured_s * max(1.0, measured_cpus / lambda_vcpus(memory_mb))


def lambda_usd_per_million(duration_s: float, init_s: float, prices: Prices) -> float:
    """Compute (billed per ms) + requests + API Gateway, with a share of invocations paying init."""
    gb = prices.lambda_memory_mb / 1024
    billed_s = math.ceil(duration_s * 1000) / 1000 + prices.cold_start_fraction * init_s
    compute = billed_s * gb * prices.lambda_usd_per_gb_s * 1e6
    return compute + prices.lambda_usd_per_million_requests + prices.api_gateway_usd_per_million_requests


def ec2_usd_per_million(throughput_per_s: float, prices: Prices, utilization: float = 1.0) -> float:
    """The instance's hourly price over the predictions it serves in that hour at ``utilization``."""
    return prices.ec2_usd_per_hour / (throughput_per_s * utilization * 3600) * 1e6


def break_even_per_month(lambda_per_million: float, prices: Prices, hours: float = 730) -> float:
    """Predictions a month above which an always-on instance is cheaper than Lambda."""
    return prices.ec2_usd_per_hour * hours / lambda_per_million * 1e6


def family(model_name: str) -> str:
    return "MLP" if model_name.startswith("mlp") else "ViT"


# --- gathering -----------------------------------------------------------------------------------


def load_results(folder: Path) -> dict[str, dict]:
    """The latest result of each benchmark that has been run; a missing one is simply absent."""
    found = {}
    for name in BENCHMARKS:
        path = folder / f"{name}.json"
        if path.is_file():
            try:
                found[name] = json.loads(path.read_text())
            except json.JSONDecodeError as error:
                message = f"error: {path} is not valid JSON ({error}); run python -m bench.{name} again"
                raise SystemExit(message) from error
            if _stale(name, found[name]):
                raise SystemExit(
                    f"error: {path} was written by an older bench.{name}; run python -m bench.{name} again"
                )
    return found


def _stale(name: str, result: dict) -> bool:
    """A result in a benchmark's older format, which the report would misread."""
    if name == "training":
        return any(r.get("mode") == "fit" and "data_wait_share" not in r for r in result.get("rows", []))
    return name == "serving" and any("layout" not in m for m in result.get("models", []))


def latest_runs(tracking_uri: str, experiment: str) -> list[dict]:
    """The newest finished run of each model that has an exported model (``int8/servable`` logged)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs, seen = [], set()
    for run in client.search_runs(
        [found.experiment_id],
        "attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=500,
    ):
        name, metrics = run.data.tags.get("model_name"), run.data.metrics
        if not name or name in seen or "int8/servable" not in metrics:
            continue
        seen.add(name)
        sizes = {a.path.split("/")[-1]: a.file_size for a in client.list_artifacts(run.info.run_id, "model")}
        runs.append(
            {
                "model": name,
                "run_id": run.info.run_id,
                "data_root": run.data.params.get("data.root", "?"),
                "data_fingerprint": run.data.tags.get("data_fingerprint", "?"),
                "metrics": {k: metrics.get(f"test_tuned/{k}", float("nan")) for k in (*QUALITY, "threshold")},
                "int8_servable": bool(metrics.get("int8/servable")),
                "int8_auroc_drop": metrics.get("int8/auroc_drop"),
                "int8_label_agreement": metrics.get("int8/label_agreement"),
                "size_mb": {k: v / 1e6 for k, v in sizes.items() if k.endswith(".onnx") and v},
            }
        )
    return sorted(runs, key=lambda r: (family(r["model"]), r["model"]))


# --- the sections ----------------------------------------------------------------------------------


@dataclass
class Section:
    title: str
    text: list[str] = field(default_factory=list)
    tables: list[tuple[tuple[str, ...], list[tuple]]] = field(default_factory=list)
    images: list[str] = field(default_factory=list)


def quality_section(runs: list[dict], out: Path, looked_in: str) -> Section:
    """``looked_in`` says what was found instead when there are no runs: which store, which experiment."""
    section = Section("Quality (test split, at each model's tuned threshold)")
    if not runs:
        section.text.append(f"{looked_in[0].upper()}{looked_in[1:]}: train one (`make demo`, or `training/fit.py`).")
        return section
    headers = (
        "model",
        "run",
        "data",
        *QUALITY,
        "threshold",
        "int8 servable",
        "int8 AUROC drop",
        "int8 labels agree",
        "fp32 MB",
        "int8 MB",
    )
    rows = [
        (
            r["model"],
            r["run_id"][:8],
            r["data_root"],
            *(r["metrics"][k] for k in QUALITY),
            r["metrics"]["threshold"],
            "yes" if r["int8_servable"] else "no",
            r["int8_auroc_drop"] if r["int8_auroc_drop"] is not None else "-",
            f"{r['int8_label_agreement']:.1%}" if r.get("int8_label_agreement") is not None else "-",
            *(r["size_mb"].get(MODEL_FILES[p], float("nan")) for p in ("fp32", "int8")),
        )
        for r in runs
    ]
    section.tables.append((headers, rows))
    section.text.append(
        "Read these beside the data they came from: a run on the generated demo data says the "
        "pipeline works, not how well a model finds SSA in MHIST. `int8 servable` is the export's "
        "gate on the validation split: its two measures, the AUROC drop and the share of labels "
        "that agree with fp32, are beside it."
    )
    section.images.append(
        _bars(
            out / "quality.png",
            "Test metrics at the tuned threshold",
            list(QUALITY),
            {r["model"]: [r["metrics"][k] for k in QUALITY] for r in runs},
            "value",
        )
    )
    return section


def latency_section(result: dict, out: Path) -> Section:
    section = Section("Inference latency per runtime (CPU)")
    section.text.append(f"Measured on {describe(result['machine'])}, {result['machine']['date']}.")
    rows = result["rows"]
    section.text.append(
        "A model's runtimes and its floor's probe (the fastest one) are timed in turn, call by call; "
        "`x floor` is median over median, `best` fastest over fastest."
    )
    headers = (
        "model",
        "runtime",
        "batch",
        "median ms/img",
        "floor ms/img",
        "x floor",
        "best",
        "img/s",
        "size MB",
        "load s",
    )
    section.tables.append(
        (
            headers,
            [
                (
                    r["model"],
                    r["runtime"],
                    r["batch"],
                    r["median_ms_per_image"],
                    r["floor_ms_per_image"],
                    r.get("vs_floor", float("nan")),
                    r.get("best_vs_floor", float("nan")),
                    r["images_per_s"],
                    r["size_mb"],
                    r["load_s"],
                )
                for r in rows
            ],
        )
    )
    models = sorted({r["model"] for r in rows})
    runtimes = sorted({r["runtime"] for r in rows}, key=RUNTIMES.index)
    batch1 = {(r["model"], r["runtime"]): r["median_ms_per_image"] for r in rows if r["batch"] == 1}
    series = {rt: [batch1.get((m, rt), float("nan")) for m in models] for rt in runtimes}
    floors = {r["model"]: r["floor_ms_per_image"] for r in rows if r["batch"] == 1 and r["runtime"] == "onnx-fp32"}
    section.images.append(
        _bars(out / "latency.png", "Median latency per image at batch 1 (ms)", models, series, "ms", floors)
    )
    return section


def cold_start_section(result: dict) -> Section:
    section = Section("Cold start: process start to first prediction")
    section.text.append(
        f"{result['repeats']} fresh processes each, {describe(result['machine'])}, {result['machine']['date']}."
    )
    headers = ("model", "variant", "front door", "median s", "max s", "model load s", "warm request ms", "peak MB")
    rows = [
        (
            r["model"],
            r["variant"],
            r["door"],
            r["median_s"],
            r["max_s"],
            r.get("load_s", float("nan")),
            r.get("warm_request_s", float("nan")) * 1000,
            r.get("peak_rss_mb", float("nan")),
        )
        for r in result["rows"]
    ]
    section.tables.append((headers, rows))
    return section


def serving_section(result: dict) -> Section:
    section = Section("The EC2 service under load (gunicorn on 127.0.0.1)")
    section.text.append(
        f"{result['seconds']:.0f} s per level, {describe(result['machine'])}, "
        f"{result['machine']['date']}. Layout: gunicorn workers x threads; raw: the same layout's "
        "predictors in-process, measured in slices alternating with the service's."
    )
    headers = SERVING_HEADERS
    rows = [serving_cells(m, r) for m in result["models"] for r in m["levels"]]
    section.tables.append((headers, rows))
    return section


def training_section(result: dict) -> Section:
    section = Section("Training throughput")
    s = result["settings"]
    section.text.append(
        f"{describe(result['machine'])}, {result['machine']['date']}; accelerator {s['accelerator']}, "
        f"channels-last {s['channels_last']}, compile {s['compile']}."
    )
    headers, rows = TRAINING_HEADERS, [training_cells(r) for r in result["rows"]]
    section.tables.append((headers, rows))
    return section


def costs(results: dict[str, dict], prices: Prices) -> list[dict]:
    """Per benchmarked model: Lambda from the measured warm handler time, EC2 from measured saturation."""
    cold, serving = results.get("cold_start"), results.get("serving")
    if not cold:
        return []
    saturation: dict[str, tuple[str, float, str]] = {}  # model -> file, best req/s of any layout and load, layout
    for m in (serving or {}).get("models", []):
        best = max(level["throughput_per_s"] for level in m["levels"])
        if best > saturation.get(m["model"], ("", 0.0, ""))[1]:
            saturation[m["model"]] = (m["file"], best, m["layout"])
    out = []
    for row in cold["rows"]:
        if row["door"] != "lambda" or "warm_request_s" not in row:
            continue
        file = FILES[row["variant"]]
        duration = lambda_duration_s(row["warm_request_s"], cold["machine"]["cpus"], prices.lambda_memory_mb)
        per_million = lambda_usd_per_million(duration, row["init_s"], prices)
        served = saturation.get(row["model"])
        measured = served is not None and served[0] == file
        ec2 = ec2_usd_per_million(served[1], prices) if measured else float("nan")
        out.append(
            {
                "model": row["model"],
                "variant": row["variant"],
                "measured_ms": row["warm_request_s"] * 1000,
                "lambda_ms": duration * 1000,
                "peak_mb": row.get("peak_rss_mb", float("nan")),
                "lambda_usd_per_million": per_million,
                "ec2_usd_per_million": ec2,
                "ec2_layout": served[2] if measured else "-",
                "break_even_per_month": break_even_per_month(per_million, prices),
            }
        )
    return out


def cost_section(rows: list[dict], prices: Prices, cpus: int, out: Path) -> Section:
    section = Section("Cost per million predictions: Lambda against the EC2 service")
    memory = prices.lambda_memory_mb
    section.text.append(
        f"Lambda at {memory} MB ({lambda_vcpus(memory):.2f} vCPU): the warm handler time measured here on {cpus} "
        f"CPUs, scaled up where Lambda has fewer; ${prices.lambda_usd_per_gb_s}/GB-s billed per ms, "
        f"${prices.lambda_usd_per_million_requests}/M requests, API Gateway "
        f"${prices.api_gateway_usd_per_million_requests}/M, {prices.cold_start_fraction:.0%} of invocations "
        "paying the measured init. EC2: "
        f"${prices.ec2_usd_per_hour}/h over the service's best throughput measured here, in its best gunicorn "
        "layout (c7i.large has 2 vCPUs, like this machine), i.e. the instance kept busy; at 10% busy it costs ten "
        "times as much. "
        "Break-even: predictions a month above which the always-on instance is the cheaper one."
    )
    if not rows:
        section.text.append("Not measured yet: run `python -m bench.cold_start` and `python -m bench.serving`.")
        return section
    for row in rows:
        if row["peak_mb"] == row["peak_mb"] and row["peak_mb"] > memory * 0.9:
            section.text.append(
                f"WARNING: {row['model']} {row['variant']} peaked at {row['peak_mb']:.0f} MB, too "
                f"close to the Lambda's {memory} MB."
            )
    headers = (
        "model",
        "variant",
        "handler ms here",
        "Lambda ms",
        "peak MB",
        "Lambda $/M",
        "EC2 $/M (busy)",
        "EC2 layout",
        "break-even /month",
    )
    table = [
        (
            r["model"],
            r["variant"],
            r["measured_ms"],
            r["lambda_ms"],
            r["peak_mb"],
            r["lambda_usd_per_million"],
            r["ec2_usd_per_million"],
            r["ec2_layout"],
            f"{r['break_even_per_month'] / 1e6:.1f} M",
        )
        for r in rows
    ]
    section.tables.append((headers, table))
    labels = [f"{r['model']} {r['variant']}" for r in rows]
    section.images.append(
        _bars(
            out / "cost.png",
            "USD per million predictions",
            labels,
            {
                "Lambda + API Gateway": [r["lambda_usd_per_million"] for r in rows],
                "EC2 (busy)": [r["ec2_usd_per_million"] for r in rows],
            },
            "USD",
        )
    )
    return section


def _floor_detail(row: dict, inference: dict) -> str:
    """Why a row is where it is: its fastest run against the fastest run of the peak's kernel; where
    the libraries themselves stand against that peak; against a bandwidth floor, the rate at which it
    reads its weights; against a FLOP floor, from its onnxruntime profile, the matmuls' share and
    their rate in the model and at the same shapes alone."""
    ceilings, best = inference["ceilings"], row.get("best_vs_floor", math.nan)
    detail = f" (fastest run {best:.2f}x the peak's fastest)" if math.isfinite(best) else ""
    kind = floor_kind(row)
    bandwidth = kind == "read_gbps"
    rates = inference.get("probes", {}).get(LIBRARY_PROBES.get(kind), {})
    if rates:
        shares = ", ".join(f"{label} {rate / ceilings[kind]:.0%}" for label, rate in rates.items())
        detail += f"; the libraries alone reach {shares} of that peak"
    if bandwidth:
        rate = row["size_mb"] / row["median_ms_per_image"]  # MB/ms = GB/s
        probe = row.get("floor_probe_rate", ceilings[kind])
        return detail + f"; reads its weights at {rate:.1f} GB/s, the read kernel between its runs at {probe:.1f}"
    profile = row.get("profile")
    if not profile or not math.isfinite(profile["fp32_matmul_gflops"]):
        return detail
    rate, alone = profile["fp32_matmul_gflops"], profile.get("weight_matmul_alone_gflops", math.nan)
    detail += (
        f"; matmuls {profile['matmul_share']:.0%} of kernel time, at {rate:.0f} GFLOP/s in the model "
        f"({rate / ceilings['fp32_gflops']:.0%} of the fp32 peak)"
    )
    if math.isfinite(alone):
        detail += (
            f"; its weight matmuls reach {profile['weight_matmul_gflops']:.0f} GFLOP/s in the model and "
            f"{alone:.0f} at the same shapes alone"
        )
    return detail


def goals_section(results: dict[str, dict]) -> Section:
    """The goals against what was measured; a goal whose benchmark has not run says so."""
    section = Section("Goals")
    lines = []
    inference = results.get("inference")
    if inference:
        rows = {(r["model"], r["runtime"], r["batch"]): r for r in inference["rows"]}
        beaten = beaten_peaks(inference)
        for (model, runtime, batch), row in sorted(rows.items()):
            goal = OF_FLOOR_GOALS.get((model.startswith("mlp"), batch)) if is_served(row) else None
            if goal is not None and math.isfinite(row.get("vs_floor", math.nan)):
                within = f"{model} served ({runtime}) at batch {batch}: at most {goal}x its floor ({row['floor']})"
                kind = floor_kind(row)
                if kind in beaten:
                    lines.append(f"- not judged: {within} (the peak is not this CPU's: {beaten[kind]})")
                    continue
                detail = f"{row['vs_floor']:.2f}x the floor" + _floor_detail(row, inference)
                lines.append(_goal(within, row["vs_floor"] <= goal, detail))
        batch1 = {(m, rt): r for (m, rt, b), r in rows.items() if b == 1}
        for (model, runtime), row in sorted(batch1.items()):
            if runtime == "onnx-int8" and (model, "onnx-fp32") in batch1:
                speedup = batch1[(model, "onnx-fp32")]["median_ms_per_image"] / row["median_ms_per_image"]
                lines.append(
                    _goal(
                        f"{model} int8 at least {INT8_SPEEDUP_GOAL}x faster than fp32",
                        speedup >= INT8_SPEEDUP_GOAL,
                        f"{speedup:.1f}x",
                    )
                )
    cold = results.get("cold_start")
    for row in (cold or {}).get("rows", []):
        goal = COLD_START_GOAL_S.get((row["model"], row["variant"]))
        if row["door"] == "lambda" and goal is not None:
            lines.append(
                _goal(
                    f"{row['model']} {row['variant']} cold start under {goal} s",
                    row["median_s"] < goal,
                    f"{row['median_s']:.2f} s",
                )
            )
    served = (results.get("serving") or {}).get("models", [])
    for model in dict.fromkeys(m["model"] for m in served):
        verdict = batched_against_today(served, model)
        if verdict is not None:
            few, most = verdict.clients
            gain_goal = f"{model} service batched: throughput at {most} clients >= {BATCHED_THROUGHPUT_GOAL}x today's"
            p50_goal = f"{model} service batched: p50 at {few} client(s) <= {BATCHED_P50_GOAL}x today's"
            lines.append(_goal(gain_goal, verdict.throughput_met, verdict.measured))
            lines.append(_goal(p50_goal, verdict.p50_met, f"{verdict.p50:.2f}x"))
    for m in served:
        service = f"{m['model']} service ({m.get('config', 'today')}, {m['layout']})"
        overhead = m["p50_overhead_ms"]
        lines.append(
            _goal(
                f"{service}: p50 at 1 client within {P50_OVERHEAD_GOAL_MS:.0f} ms of the predictor",
                overhead <= P50_OVERHEAD_GOAL_MS,
                f"{overhead:+.1f} ms",
            )
        )
        lines.append(
            _goal(
                f"{service}: throughput at saturation >= {SATURATION_GOAL:.0%} of the predictor's",
                m["saturation_ratio"] >= SATURATION_GOAL,
                f"{m['saturation_ratio']:.0%}",
            )
        )
        lines.append(_goal(f"{service}: no failed request", m["failures"] == 0, f"{m['failures']} failed"))
    training = (results.get("training") or {}).get("rows", [])
    lines += [_loading_goal(fit, training) for fit in training if fit["mode"] == "fit"]
    missing = [f"`python -m bench.{name}`" for name in BENCHMARKS if name not in results]
    if missing:
        lines.append("Not run yet: " + ", ".join(missing) + ".")
    section.text.extend(lines)
    return section


def _loading_goal(fit: dict, rows: list[dict]) -> str:
    """Loading is not the bottleneck when the loader alone outruns the step alone and the fit waited
    for data at most ``DATA_WAIT_GOAL`` of its time (timed within one run, so free of drift)."""
    config = [r for r in rows if r["config"] == fit["config"]]
    step = next((r for r in config if r["mode"] == "step" and r["phase"] == fit["phase"]), None)
    loader = next((r for r in config if r["mode"] == "loader"), None)
    what = f"{fit['config']} {fit['phase']}: loading not the bottleneck (waits for data <= {DATA_WAIT_GOAL:.0%})"
    share = fit["data_wait_share"]
    detail = f"waited for data {share:.1%} of its time"
    met = share <= DATA_WAIT_GOAL
    if loader and step:
        ahead = loader["images_per_s"] / step["images_per_s"]
        detail += f"; the loader alone delivers {ahead:.1f}x the step's images/s"
        met = met and ahead >= 1
    if step:
        slower = fit["step_ms_in_fit"] / step["ms_per_step"] - 1
        detail += (
            f"; fit at {fit['images_per_s'] / step['images_per_s']:.0%} of the step alone, its steps "
            f"{slower:+.0%} beside the loader's workers"
        )
    return _goal(what, met, detail)


def _goal(what: str, met: bool, measured: str) -> str:
    return f"- {'met' if met else 'MISSED'}: {what} ({measured})"


def _bars(
    path: Path,
    title: str,
    groups: list[str],
    series: dict[str, list[float]],
    unit: str,
    floors: dict[str, float] | None = None,
) -> str:
    """Save ``bar_figure``'s chart; returns the file name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bar_figure(title, groups, series, unit, floors).savefig(path, dpi=110)
    return path.name


def bar_figure(
    title: str, groups: list[str], series: dict[str, list[float]], unit: str, floors: dict[str, float] | None = None
) -> Figure:
    """A grouped bar chart, with a group's physical floor drawn across it where one is given. A bare
    ``Figure``, not pyplot's: nothing global is left open."""
    fig = Figure(figsize=(max(6, 1.6 * len(groups) * max(1, len(series)) / 2), 4), layout="tight")
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        bars = ax.bar(xs, [0 if v != v else v for v in values], width, label=label)
        ax.bar_label(bars, labels=["-" if v != v else f"{v:.3g}" for v in values], fontsize=7)
    drawn = [(g, floors[group]) for g, group in enumerate(groups) if (floors or {}).get(group, math.nan) > 0]
    for n, (g, floor) in enumerate(drawn):
        ax.hlines(
            floor,
            g - 0.45,
            g + 0.45,
            colors="black",
            linestyles="--",
            linewidth=1.2,
            label="fp32 floor" if n == 0 else None,
        )
    ax.set_xticks(range(len(groups)), groups, rotation=15, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


# --- rendering -----------------------------------------------------------------------------------


def render_markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}\n"]
    for s in sections:
        parts.append(f"## {s.title}\n")
        parts += [line + ("\n" if not line.startswith("- ") else "") for line in s.text]
        if s.text and s.text[-1].startswith("- "):
            parts.append("")  # a list ends before the next block
        parts += ["\n" + markdown_table(h, rows, digits=2) for h, rows in s.tables]
        parts += [f"\n![{s.title}]({image})\n" for image in s.images]
    return "\n".join(parts).replace("\n\n\n", "\n\n")


def render_html(title: str, sections: list[Section], folder: Path) -> str:
    """One self-contained page: the plots are embedded, so the MLflow artifact view shows it whole."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "-" if value != value else f"{value:.2f}"
        return html.escape(str(value))

    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        body.append(f"<h2>{html.escape(s.title)}</h2>")
        body += [f"<p>{html.escape(line)}</p>" for line in s.text]
        for headers, rows in s.tables:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            trs = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
        for image in s.images:
            data = base64.b64encode((folder / image).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(s.title)}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
        "text-align:right}img{max-width:100%}"
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def update_readme(readme: Path, summary: str) -> None:
    """Replace the block between the report markers; refuse, naming them, if they are missing."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: {readme} has no {README_START} ... {README_END} block to replace")
    partial = readme.with_name(f".{readme.name}.partial")
    partial.write_text(pattern.sub(lambda _: f"{README_START}\n{summary}\n{README_END}", text))
    partial.replace(readme)


def _artifact_location(tracking_uri: str) -> str | None:
    """A local sqlite store keeps its artifacts beside it, as ``fit.py``'s does; MLflow's default is
    ``./mlruns`` of whatever folder the report happens to run in."""
    path = sqlite_path(tracking_uri)
    return None if path is None else str(path.resolve().parent / "mlartifacts")


def log_to_mlflow(tracking_uri: str, folder: Path, prices: Prices, runs: list[dict], cost_rows: list[dict]) -> str:
    """A run of its own in ``mhist-comparison``: prices as params, costs as metrics, the report as artifacts."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("mhist-comparison")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("mhist-comparison", artifact_location=_artifact_location(tracking_uri))
    )
    run = client.create_run(
        experiment_id,
        run_name=f"comparison-{time.strftime('%Y%m%d-%H%M')}",
        tags={f"source_run.{r['model']}": r["run_id"] for r in runs},
    )
    run_id = run.info.run_id
    try:
        for key, value in asdict(prices).items():
            client.log_param(run_id, key, value)
        for row in cost_rows:
            prefix = f"{row['model']}.{row['variant']}"
            for key in ("lambda_usd_per_million", "ec2_usd_per_million", "lambda_ms"):
                if row[key] == row[key]:
                    client.log_metric(run_id, f"{prefix}.{key}", row[key])
        client.log_artifacts(run_id, str(folder), "report")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id)
    return run_id


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the benchmarks wrote their JSON")
    parser.add_argument("--tracking-uri", default=DEFAULT_STORE)
    parser.add_argument("--experiment", default="mhist", help="the experiment the models were trained in")
    parser.add_argument("--out", type=folder, default=RESULTS / "report")
    parser.add_argument(
        "--readme",
        type=Path,
        default=None,
        help="also replace the report block of this markdown file (docs/benchmarks.md)",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="write the files only")
    for price in fields(Prices):
        parser.add_argument(flag(price.name), type=type(price.default), default=price.default)
    args = parser.parse_args(argv)
    prices = Prices(**{p.name: getattr(args, p.name) for p in fields(Prices)})
    if problems := prices.problems():
        parser.error("; ".join(problems))
    no_store = unreadable_store(args.tracking_uri)
    if no_store and not args.no_mlflow:  # before anything is written (MLflow would make an empty store there)
        raise SystemExit(f"error: {no_store} (or pass --no-mlflow for a report of the benchmarks alone)")
    results = load_results(args.results)
    runs = [] if no_store else latest_runs(args.tracking_uri, args.experiment)
    args.out.mkdir(parents=True, exist_ok=True)
    cost_rows = costs(results, prices)
    cpus = results["cold_start"]["machine"]["cpus"] if "cold_start" in results else 0
    looked_in = f"no exported run in experiment {args.experiment!r} at {args.tracking_uri}"
    if no_store:  # the quality section says which store it could not read
        missing = sqlite_path(args.tracking_uri)
        looked_in = f"no MLflow store at {missing}" if missing else no_store
    sections = [goals_section(results), quality_section(runs, args.out, looked_in)]
    if "inference" in results:
        sections.append(latency_section(results["inference"], args.out))
    if "cold_start" in results:
        sections.append(cold_start_section(results["cold_start"]))
    if "serving" in results:
        sections.append(serving_section(results["serving"]))
    sections.append(cost_section(cost_rows, prices, cpus, args.out))
    if "training" in results:
        sections.append(training_section(results["training"]))
    title = f"MHIST classifiers compared ({time.strftime('%Y-%m-%d')})"
    (args.out / "report.md").write_text(render_markdown(title, sections))
    (args.out / "report.html").write_text(render_html(title, sections, args.out))
    if args.readme:  # tables only: the plots live in the (ignored) results folder and in MLflow
        kept = [replace(s, images=[]) for s in sections if not s.title.startswith("Quality")]
        update_readme(args.readme, render_markdown(title, kept).split("\n", 1)[1].replace("## ", "#### "))
    run_id = None if args.no_mlflow else log_to_mlflow(args.tracking_uri, args.out, prices, runs, cost_rows)
    print(f"wrote {args.out / 'report.md'} and report.html" + (f"; MLflow run {run_id}" if run_id else ""))
    return {"sections": sections, "costs": cost_rows, "runs": runs, "mlflow_run_id": run_id}


if __name__ == "__main__":
    main()
