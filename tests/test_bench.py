"""Benchmarks are never part of the test run; this proves each one works at a tiny size, and that
the report turns their results and a real MLflow run into its files, a README block and an MLflow run."""

from __future__ import annotations

import contextlib
import functools
import io
import itertools
import json
import math
import re
import statistics
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench import cold_start, inference, report, serving, training
from bench.common import batched_against_today, model_store
from inference.cores import available_cpus, default_workers


@pytest.fixture(scope="module")
def bench_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight MLP exported as training exports (fp32 + int8, serving metadata)."""
    return model_store(["mlp-small"], tmp_path_factory.mktemp("bench-models"))


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder every benchmark below writes into, as ``bench/results`` is."""
    return tmp_path_factory.mktemp("results")


@pytest.fixture(scope="module")
def inference_result(bench_store: Path, results: Path) -> dict:
    args = ["--models", "mlp-small", "--batches", "1", "2", "--repeats", "2", "--probe-mb", "64"]
    return inference.main([*args, "--store", str(bench_store), "--out", str(results)])


@pytest.fixture(scope="module")
def cold_start_result(bench_store: Path, results: Path) -> dict:
    args = ["--models", "mlp-small", "--variants", "int8", "--repeats", "1", "--store", str(bench_store)]
    return cold_start.main([*args, "--out", str(results)])


@pytest.fixture(scope="module")
def serving_result(bench_store: Path, results: Path) -> dict:
    args = ["--models", "mlp-small", "--variant", "int8", "--concurrency", "1", "2", "--seconds", "1", "--rounds", "2"]
    args += ["--configs", "today", "batched"]  # gunicorn_conf.py's layouts for each
    return serving.main([*args, "--store", str(bench_store), "--out", str(results)])


@pytest.fixture(scope="module")
def training_run(small_root: Path, results: Path) -> SimpleNamespace:
    """``result``, and the text of every warning the benchmark let through (``warnings``)."""
    args = [
        "--configs",
        "demo-mlp.yaml",
        "--batch-size",
        "4",
        "--num-workers",
        "1",
        "--steps",
        "2",
        "--data-root",
        str(small_root),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = training.main([*args, "--out", str(results)])
    return SimpleNamespace(result=result, warnings=[str(w.message) for w in caught])


@pytest.fixture(scope="module")
def training_result(training_run: SimpleNamespace) -> dict:
    return training_run.result


def test_inference_benchmark_runs_and_writes_its_table(inference_result: dict, results: Path) -> None:
    rows = json.loads((results / "inference.json").read_text())["rows"]
    assert [(r["runtime"], r["batch"]) for r in rows] == [(rt, b) for rt in inference.RUNTIMES for b in (1, 2)]
    assert all(r["median_ms_per_image"] > 0 and r["images_per_s"] > 0 for r in rows)
    ceilings, probes, isa = inference_result["ceilings"], inference_result["probes"], inference_result["peaks"]
    # the hardware's peaks, from bench/peaks.c built here; the libraries' rates beside them
    assert {"fp32_gflops", "int8_gops", "read_gbps"} <= ceilings.keys() == isa.keys()
    assert all(rate > 0 for rate in ceilings.values())
    assert "vfmadd231ps" in isa["fp32_gflops"]
    assert any(name.startswith("onnxruntime") for name in probes["matmul_gflops"])
    assert all(r["floor"] == "weights / bandwidth" for r in rows)
    for row in rows:  # the MLP's floor is its weight reads at batch 1; a batch shares them
        floored = [row[key] for key in ("floor_ms_per_image", "vs_floor", "best_vs_floor", "floor_probe_rate")]
        assert all(v > 0 for v in floored) if row["batch"] == 1 else all(math.isnan(v) for v in floored)
    table = (results / "inference.md").read_text()
    assert "| mlp-small | onnx-int8 | 1 |" in table
    assert "best x floor" in table
    assert "floor ms/img" in table
    for row in rows:  # onnxruntime rows carry the session's own profile; PyTorch and OpenVINO have none
        assert ("profile" in row) == row["runtime"].startswith("onnx-")
    precision = {r["runtime"]: r["precision"] for r in rows}
    assert precision["onnx-int8"] == precision["openvino-int8"] == precision["openvino-int8-grouped"] == "int8"
    assert precision["openvino-fp32"] == "f32"  # what OpenVINO's plugin reports it ran in
    assert precision["openvino-bf16"] in {"bf16", "f32"}  # f32 on a CPU without bf16 instructions
    reference = [r for r in rows if r["runtime"] == "onnx-fp32"]
    assert all(r["max_abs_diff_vs_fp32"] == 0 for r in reference)
    assert all(r["max_abs_diff_vs_fp32"] < 0.1 for r in rows if not r["runtime"].startswith("pytorch"))
    assert all(math.isnan(r["max_abs_diff_vs_fp32"]) for r in rows if r["runtime"].startswith("pytorch"))
    assert "| mlp-small | openvino-int8 | int8 | 1 |" in table
    # the served row: the int8 file in the runtime serving's own MODEL_RUNTIME=auto picks here
    for batch in (1, 2):
        (served,) = [r["runtime"] for r in rows if r["served"] and r["batch"] == batch]
        assert served in {"onnx-int8", "openvino-int8", "openvino-int8-grouped"}
    versus = table.split("Against OpenVINO and today's file in the same run:")[1]
    assert f"- mlp-small batch 2: served, {served}, " in versus
    assert f"- mlp-small batch 1: served, {served}, at " in versus  # against today's dynamic int8 file
    # bf16 against the served row, only where OpenVINO really computed in bf16
    assert ("- mlp-small batch 1: bf16 (MODEL_VARIANT=bf16) at " in versus) is (precision["openvino-bf16"] == "bf16")
    for row in (r for r in rows if "profile" in r):
        profile = row["profile"]
        matmul_ms = sum(ms for op, ms in profile["ops_ms_per_image"].items() if op in inference.MATMULS)
        assert matmul_ms > 0  # the MLP's matmuls are found under the names the profile gives them
        # the share is the matmuls' time over the kernel's, not a timing: a stall on another op in a
        # loaded CI machine once put a real share of 97% at 49%
        assert profile["matmul_share"] == pytest.approx(matmul_ms / profile["kernel_ms_per_image"])
        assert sum(profile["ops_ms_per_image"].values()) == pytest.approx(profile["kernel_ms_per_image"])
        kind = "integer" if "int8" in row["runtime"] else "fp32"
        assert profile[f"{kind}_matmul_gflops"] > 0
        if kind == "fp32":  # every matmul of an MLP is by a weight, and those shapes also run alone
            assert profile["weight_matmul_gflops"] == pytest.approx(profile["fp32_matmul_gflops"])
            assert profile["weight_matmul_alone_gflops"] > 0
    assert "Where the time goes" in table
    assert "same shapes alone" in table


def test_matmul_flops_come_from_the_profiled_shapes() -> None:
    args = {
        "input_type_shape": [{"float": [8, 197, 768]}, {"float": []}],
        "output_type_shape": [{"float": [8, 197, 3072]}],
    }
    assert inference._matmul_flops(args) == 2 * 8 * 197 * 3072 * 768
    assert inference._weight_shape(args) == (8 * 197, 768, 3072)  # a weight shown as []


def test_runtimes_and_probe_are_timed_in_turn() -> None:
    order: list[str] = []
    calls = [lambda: order.append("pytorch"), lambda: order.append("onnx"), lambda: order.append("probe")]
    samples = inference.paced(calls, repeats=3)
    assert [len(s) for s in samples] == [3, 3, 3]
    assert order == ["pytorch", "onnx", "probe"] * 5  # two untimed warm-ups, then three timed turns


def test_the_native_peaks_are_the_work_they_claim() -> None:
    """Each kernel's work is its instruction count times the lanes: a 2-thread AVX2 fp32 FMA kernel
    does 2 threads x 12 chains x 8 lanes x 2 FLOPs per iteration; AVX2's int8 kernel runs 10 chains
    (12 spill out of its registers)."""
    from bench.peaks import library

    lib = library()
    threads = lib.threads()
    assert lib.fp32_fma(10) == threads * 12 * 10 * 2 * (16 if "avx512" in lib.isa_fp32().decode() else 8)
    int8_lanes, int8_chains = (64, 12) if "avx512" in lib.isa_int8().decode() else (32, 10)
    assert lib.int8_dot(10) == threads * int8_chains * 10 * 2 * int8_lanes
    buffer = np.ones(1024, dtype=np.float32)
    assert lib.read_bytes(buffer.ctypes.data, buffer.size) == 4096
    # 8 streams a thread, each a whole number of 64-float blocks: what does not divide is left unread
    streamed = np.ones(threads * 8 * 64 * 3 + 100, dtype=np.float32)
    assert lib.read_bytes_streams(streamed.ctypes.data, streamed.size) == threads * 8 * 64 * 3 * 4
    # AMX: 4 tile instructions an iteration, each 16 x 16 outputs summed over 64 int8 or 32 bf16 pairs;
    # no work where this build or CPU lacks it (Linux lists amx_int8 only where it hands out the tile state)
    flags = Path("/proc/cpuinfo").read_text().split()
    for kernel, isa, feature, depth in (
        (lib.amx_int8_dot, lib.isa_amx_int8, "amx_int8", 64),
        (lib.amx_bf16_dot, lib.isa_amx_bf16, "amx_bf16", 32),
    ):
        usable = isa().decode() != "none" and feature in flags
        assert kernel(10) == (threads * 4 * 10 * 2 * 16 * 16 * depth if usable else 0.0)


def test_the_peak_is_the_faster_kernel_not_the_one_with_more_work() -> None:
    """An AMX kernel does more work per call than the vector one and may still be slower (a CPU that
    shares one tile unit between its threads): the rate decides."""
    from bench.peaks import Peak, fastest

    vector = Peak(functools.partial(time.sleep, 0.002), 1e6, "vector")  # 5e8 a second
    amx = Peak(functools.partial(time.sleep, 0.02), 4e6, "amx")  # 2e8 a second
    assert fastest([vector, amx]) is vector
    assert fastest([amx, Peak(functools.partial(time.sleep, 0.002), 4e6, "faster amx")]).isa == "faster amx"


def test_floor_work_is_flops_or_weight_bytes_where_a_floor_applies() -> None:
    assert inference.floor_work(False, "onnx-fp32", 8, 1e8, 35e9) == ("fp32_gflops", 8 * 35e9)
    assert inference.floor_work(False, "onnx-int8", 1, 1e8, 35e9) == ("int8_gops", 35e9)  # the int8 peak
    assert inference.floor_work(True, "onnx-int8", 1, 3.6e8, 0.0) == ("read_gbps", 3.6e8)
    assert inference.floor_work(True, "onnx-fp32", 8, 1.4e9, 0.0) is None  # a batch shares the weight reads
    # OpenVINO's bf16 holds the fp32 file's weights in bf16 (an AMX Xeon's MLP read "28 GB/s" at a 25 peak)
    held = {
        (runtime, ran): inference.weight_bytes_held(runtime, inference.Loaded(None, print, 0.0, 1.4e9, 0.0, ran))
        for runtime, ran in (("openvino-bf16", "bf16"), ("openvino-bf16", "fp32"), ("pytorch-bf16", "bf16"))
    }
    assert held == {("openvino-bf16", "bf16"): 0.7e9, ("openvino-bf16", "fp32"): 1.4e9, ("pytorch-bf16", "bf16"): 1.4e9}


def test_the_grouped_int8_row_is_ours_not_openvinos_own_peer() -> None:
    """The MLP's int8 file run grouped is a way serving's auto runs it, so the served row is not judged
    against it as OpenVINO's own best configuration."""
    rows = [
        {"model": "mlp", "batch": 1, "runtime": runtime, "served": runtime == "onnx-int8", "median_ms_per_image": ms}
        | {"max_abs_diff_vs_fp32": 1e-4}
        for runtime, ms in (("onnx-int8", 20.0), ("openvino-int8", 40.0), ("openvino-int8-grouped", 10.0))
    ]
    assert "OpenVINO's best other agreeing, openvino-int8, 40.0: ours at 0.50x (faster)" in inference.against_peer(rows)


def test_attention_matmuls_are_not_weight_matmuls() -> None:
    scores = {
        "input_type_shape": [{"float": [1, 12, 197, 64]}, {"float": [1, 12, 64, 197]}],
        "output_type_shape": [{"float": [1, 12, 197, 197]}],
    }
    assert inference._weight_shape(scores) is None
    linear = {
        "input_type_shape": [{"float": [197, 768]}, {"float": [768, 2304]}],
        "output_type_shape": [{"float": [197, 2304]}],
    }
    assert inference._weight_shape(linear) == (197, 768, 2304)
    prepacked = {"input_type_shape": [{"float": [1, 197, 768]}], "output_type_shape": [{"float": [1, 197, 2304]}]}
    assert inference._weight_shape(prepacked) == (197, 768, 2304)  # onnxruntime leaves the weight out


def test_same_shapes_alone_give_a_rate_and_none_give_nan() -> None:
    one = inference.alone_gflops({(64, 128, 96): 1}, repeats=3)
    assert 0 < one < 1e4
    assert math.isnan(inference.alone_gflops({}))


def test_cold_start_benchmark_times_fresh_processes(cold_start_result: dict, results: Path) -> None:
    rows = {row["door"]: row for row in cold_start_result["rows"]}
    assert set(rows) == {"lambda", "gunicorn"}
    lam = rows["lambda"]
    assert lam["runs"][0]["file"] == "model.int8.onnx"
    assert 0 < lam["load_s"] <= lam["init_s"] < lam["median_s"]
    assert lam["interpreter_s"] + lam["imports_s"] + lam["init_s"] + lam["first_request_s"] <= lam["median_s"] * 1.05
    assert lam["warm_request_s"] > 0
    assert lam["peak_rss_mb"] > 50  # numpy, onnxruntime and the model are in it
    assert rows["gunicorn"]["median_s"] > 0
    assert "| mlp-small | int8 | lambda |" in (results / "cold_start.md").read_text()


def test_serving_benchmark_loads_gunicorn_without_failures(serving_result: dict, results: Path) -> None:
    workers = default_workers()
    expected = [("today", f"{workers}x2"), ("batched", f"{workers}x8")]  # gunicorn_conf.py's defaults for each
    assert [(m["config"], m["layout"]) for m in serving_result["models"]] == expected
    assert [m["quantization"] for m in serving_result["models"]] == ["dynamic", "static"]
    today, batched = serving_result["models"]
    assert (today["runtime_setting"], today["runtime"]) == ("onnxruntime", "onnxruntime")  # before issue 20
    assert batched["runtime_setting"] == "auto"  # the image's default, and what its worker said it chose:
    assert batched["runtime"] in {"onnxruntime", "openvino"}
    cores = available_cpus()
    for model in serving_result["models"]:
        assert [level["concurrency"] for level in model["levels"]] == [1, 2]
        assert model["failures"] == 0
        assert model["session_threads"] == max(1, cores // model["workers"])  # the raw side mirrors the layout
        assert all(level["requests"] > 0 and level["p50_ms"] <= level["p99_ms"] for level in model["levels"])
        assert all(level["server_p50_ms"] > 0 and level["raw_per_s"] > 0 for level in model["levels"])
        assert [level["raw_callers"] for level in model["levels"]] == [1, 2]
        assert all(len(level["slice_throughputs"]) == 2 for level in model["levels"])  # one per round
        assert all(rate > 0 for level in model["levels"] for rate in level["slice_throughputs"])
    assert [level["images_per_run"] for level in today["levels"]] == [None, None]  # no gathering before issue 20
    one, two = (level["images_per_run"] for level in batched["levels"])
    if batched["workers"] == 1:  # the counts of one worker; two workers' do not subtract
        assert one == 1.0  # a lone client never waits for company
        assert 1.0 <= two <= 2.0
    else:
        assert one is two is None
    assert all(model["proxy"] for model in serving_result["models"])  # through nginx, as deployed
    table = (results / "serving.md").read_text()
    assert "goal >= 90%" in table
    assert "behind nginx" in table
    assert f"| mlp-small | batched | model.int8.onnx | {batched['runtime']} | {workers}x8 | 2 |" in table
    assert "mlp-small, batched against today: throughput at 2 clients" in table
    gain = batched_against_today(serving_result["models"], "mlp-small")
    assert len(gain.rounds) == 2  # one ratio per round, each of a pair of slices run in the same minutes
    assert gain.throughput == pytest.approx(statistics.median(gain.rounds))
    assert re.search(r"at 2 clients [0-9.]+x \(median of 2 paired rounds, [0-9.]+-[0-9.]+x; [0-9.]+x over", table)


def test_serving_layouts_are_parsed_or_refused_by_name() -> None:
    assert serving.Layout.parse("2x1") == serving.Layout(2, 1)
    assert str(serving.Layout(1, 2)) == "1x2"
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as stderr:
        serving.main(["--layouts", "2by1"])
    assert "'2by1' is not WORKERSxTHREADS" in stderr.getvalue()


@pytest.mark.parametrize(
    ("main", "argv", "message"),
    [
        (serving.main, ["--rounds", "0"], "argument --rounds: '0' is not a whole number of at least 1"),
        (training.main, ["--num-workers", "-1"], "argument --num-workers: '-1' is not a whole number of at least 0"),
        (training.main, ["--warmup", "0"], "argument --warmup: '0' is not a whole number of at least 1"),
        (inference.main, ["--batches", "1", "two"], "argument --batches: 'two' is not a whole number of at least 1"),
        (serving.main, ["--seconds", "0"], "argument --seconds: '0' is not a number of seconds above 0"),  # was 1/0
        (training.main, ["--precision", "17"], "--accelerator cpu --precision 17: Precision '17' is invalid"),
        pytest.param(
            training.main,
            ["--accelerator", "gpu"],
            "--accelerator gpu: ",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: gpu is valid here"),
        ),
    ],
)
def test_bad_counts_are_refused_by_name(main, argv: list[str], message: str) -> None:
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as stderr:
        main(argv)
    assert message in stderr.getvalue()


@pytest.mark.parametrize("main", [inference.main, serving.main, cold_start.main, training.main, report.main])
def test_an_output_folder_that_cannot_be_made_is_refused_before_measuring(main, tmp_path: Path) -> None:
    """It was an OSError traceback when the results were written, after every measurement."""
    (tmp_path / "a file").write_text("")
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as stderr:
        main(["--out", str(tmp_path / "a file" / "results")])
    assert f"argument --out: '{tmp_path / 'a file' / 'results'}' cannot be made ({tmp_path / 'a file'} is a file)" in (
        stderr.getvalue()
    )


def test_closed_loop_slices_add_up() -> None:
    load = serving.closed_loop(lambda state: None, 2, 0.1)
    first = len(load.latencies)
    serving.closed_loop(lambda state: None, 2, 0.1, load)
    assert len(load.latencies) > first > 0
    assert 0.2 <= load.seconds < 0.5
    assert load.summary()["requests"] == len(load.latencies)


def test_closed_loop_counts_failures_and_keeps_going() -> None:
    calls = itertools.count()  # next() on it is atomic; a generator's is not

    def flaky(state: dict) -> str | None:
        n = next(calls)
        if n % 3 == 0:
            raise ConnectionError("refused")
        return "HTTP 503: busy" if n % 3 == 1 else None

    level = serving.closed_loop(flaky, 2, 0.2).summary()
    assert level["failures"] > 0
    assert level["requests"] > 0
    assert set(level["failure_examples"]) == {"ConnectionError: refused", "HTTP 503: busy"}


def test_training_benchmark_measures_loader_step_and_fit(training_result: dict, results: Path) -> None:
    assert [(r["phase"], r["mode"]) for r in training_result["rows"]] == [
        ("all weights", "loader"),
        ("all weights", "step"),
        ("all weights", "fit"),
    ]
    assert all(r["images_per_s"] > 0 and r["batch_size"] == 4 for r in training_result["rows"])
    assert all(r["num_workers"] == 1 for r in training_result["rows"])  # --num-workers over the config's 2
    fit = training_result["rows"][-1]
    assert 0 <= fit["data_wait_share"] < 1
    assert fit["step_ms_in_fit"] > 0
    assert "| demo-mlp.yaml |" in (results / "training.md").read_text()


def test_training_benchmark_times_the_step_alone_and_names_a_broken_data_root(small_copy: Path, tmp_path: Path) -> None:
    """``--modes step`` alone was an AttributeError: only the loader mode set the data module up."""
    args = ["--configs", "demo-mlp.yaml", "--batch-size", "4", "--steps", "1", "--data-root", str(small_copy)]
    result = training.main([*args, "--modes", "step", "--out", str(tmp_path)])
    assert [r["mode"] for r in result["rows"]] == ["step"]
    text = (small_copy / "annotations.csv").read_text().replace("Partition", "Split", 1)
    (small_copy / "annotations.csv").write_text(text)
    with pytest.raises(SystemExit, match=r"^error: demo-mlp\.yaml: data\.root: .*missing column\(s\) \['Partition'\]"):
        training.main([*args, "--out", str(tmp_path / "broken")])
    assert not list((tmp_path / "broken").iterdir())  # made when the flags were read, and left empty


def test_training_benchmark_hides_the_pinned_lightnings_leafspec_notice(training_run: SimpleNamespace) -> None:
    assert not [text for text in training_run.warnings if "LeafSpec" in text]


def test_loader_wait_is_the_time_between_steps_over_the_loop_time() -> None:
    waited = training.loader_wait(steps=[0.8, 1.0, 0.9], intervals=[1.0, 1.0, 1.2])
    assert waited["data_wait_share"] == pytest.approx(0.5 / 3.2)
    assert waited["step_ms_in_fit"] == pytest.approx(900)


@pytest.mark.parametrize(
    ("loader_per_s", "wait_share", "verdict"),
    [(400.0, 0.02, "met"), (400.0, 0.3, "MISSED"), (5.0, 0.02, "MISSED")],  # waits, or a loader slower than the step
)
def test_loading_goal_needs_a_faster_loader_and_little_waiting(
    loader_per_s: float, wait_share: float, verdict: str
) -> None:
    rows = [
        {"config": "vit.yaml", "phase": "head only", "mode": "loader", "images_per_s": loader_per_s},
        {"config": "vit.yaml", "phase": "head only", "mode": "step", "images_per_s": 10.0, "ms_per_step": 6400.0},
        {
            "config": "vit.yaml",
            "phase": "head only",
            "mode": "fit",
            "images_per_s": 9.0,
            "data_wait_share": wait_share,
            "step_ms_in_fit": 6720.0,
        },
    ]
    line = report._loading_goal(rows[-1], rows)
    assert line.startswith(f"- {verdict}: vit.yaml head only: loading not the bottleneck")
    assert f"waited for data {wait_share:.1%}" in line
    assert "fit at 90% of the step alone, its steps +5% beside the loader's workers" in line


def test_bad_names_are_refused_by_name(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit, match="--models vit_bogus_patch16: timm has no model named"):
        inference.main(
            [
                "--models",
                "vit_bogus_patch16",
                "--store",
                str(tmp_path / "models"),
                "--probe-mb",
                "16",
                "--repeats",
                "1",
                "--out",
                str(tmp_path),
            ]
        )
    assert "exporting" not in capsys.readouterr().out  # not announced as if it were being built
    with pytest.raises(SystemExit, match="--configs: config nope.yaml is neither a file nor one of .*demo-mlp.yaml"):
        training.main(["--configs", "nope.yaml", "--out", str(tmp_path)])
    assert not list((tmp_path / "models").iterdir())  # no model folder, not even a half-built one
    assert not list(tmp_path.glob("*.json"))  # nothing half-written


# --- the report --------------------------------------------------------------------------------------


def test_lambda_cost_by_hand() -> None:
    prices = report.Prices(lambda_memory_mb=2048, cold_start_fraction=0.0)
    # 0.1004 s bills as 101 ms; 2 GB x 0.101 s x $0.0000166667 = $3.3667e-6 a request
    expected = 0.101 * 2 * 0.0000166667 * 1e6 + 0.20 + 3.50
    assert report.lambda_usd_per_million(0.1004, 5.0, prices) == pytest.approx(expected)
    with_init = report.lambda_usd_per_million(0.1004, 5.0, report.Prices(lambda_memory_mb=2048))
    assert with_init == pytest.approx(expected + 0.01 * 5.0 * 2 * 0.0000166667 * 1e6)


def test_lambda_duration_scales_only_down_to_fewer_vcpus() -> None:
    assert report.lambda_duration_s(0.1, 2, 1769) == pytest.approx(0.2)  # one vCPU for work measured on two
    assert report.lambda_duration_s(0.1, 2, 3538) == pytest.approx(0.1)
    assert report.lambda_duration_s(0.1, 2, 10240) == pytest.approx(0.1)  # never assumed faster
    assert report.lambda_vcpus(1769) == 1.0
    assert report.lambda_vcpus(20480) == 6.0  # the cap


def test_prices_no_cost_can_come_from_are_refused_by_name(tmp_path: Path) -> None:
    """A negative price or a cold-start fraction of 2 gave a report of negative or doubled costs."""
    argv = ["--ec2-usd-per-hour", "-1", "--cold-start-fraction", "2", "--lambda-memory-mb", "64"]
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as stderr:
        report.main([*argv, "--no-mlflow", "--results", str(tmp_path), "--out", str(tmp_path / "report")])
    assert (
        "error: --ec2-usd-per-hour must be at least 0, got -1.0; --lambda-memory-mb must be 128..10240, as "
        "Lambda allows, got 64; --cold-start-fraction must be a fraction, 0..1, got 2.0"
    ) in stderr.getvalue()
    assert not list((tmp_path / "report").iterdir())


def test_ec2_cost_and_break_even_by_hand() -> None:
    prices = report.Prices(ec2_usd_per_hour=0.36)
    assert report.ec2_usd_per_million(100, prices) == pytest.approx(0.36 / 360_000 * 1e6)  # $1 per million
    assert report.ec2_usd_per_million(100, prices, utilization=0.1) == pytest.approx(10.0)
    assert report.break_even_per_month(4.0, prices) == pytest.approx(0.36 * 730 / 4.0 * 1e6)


def test_readme_block_is_replaced_and_a_missing_one_is_named(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\nbefore\n{report.README_START}\nold\n{report.README_END}\nafter\n")
    report.update_readme(readme, "new table")
    assert readme.read_text() == f"# x\nbefore\n{report.README_START}\nnew table\n{report.README_END}\nafter\n"
    readme.write_text("# no block\n")
    with pytest.raises(SystemExit, match="report:start"):
        report.update_readme(readme, "new table")
    assert readme.read_text() == "# no block\n"


def test_latency_plot_draws_each_models_floor_across_its_bars() -> None:
    series = {"pytorch": [72.0, 244.0], "onnx-fp32": [56.0, 202.0], "onnx-int8": [14.5, 70.0]}
    fig = report.bar_figure("latency", ["mlp", "vit"], series, "ms", {"mlp": 53.4, "vit": float("nan")})
    (ax,) = fig.axes
    (floor,) = ax.collections  # one dashed line: a floor that is not a number is not drawn
    ((left, height), (right, _)) = floor.get_segments()[0]
    assert height == 53.4
    mlp_bars = ax.patches[0::2]  # series by series: mlp, vit, mlp, vit, ...
    assert left < min(bar.get_x() for bar in mlp_bars)
    assert right > max(bar.get_x() + bar.get_width() for bar in mlp_bars)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fp32 floor", *series]


def test_report_gathers_benchmarks_and_runs_into_files_readme_and_mlflow(
    inference_result: dict,
    cold_start_result: dict,
    serving_result: dict,
    training_result: dict,
    results: Path,
    trained: SimpleNamespace,
    tmp_path: Path,
) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{trained.root}/mlflow.db"
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_START}\n{report.README_END}\n")
    out = tmp_path / "report"
    made = report.main(
        [
            "--results",
            str(results),
            "--tracking-uri",
            uri,
            "--out",
            str(out),
            "--readme",
            str(readme),
            "--ec2-usd-per-hour",
            "0.5",
        ]
    )
    text = (out / "report.md").read_text()
    assert "| mlp-64-32 |" in text  # quality from the trained run
    (run,) = made["runs"]
    agreement = MlflowClient(uri).get_run(run["run_id"]).data.metrics["int8/label_agreement"]
    assert f"| {'yes' if run['int8_servable'] else 'no'} | " in text
    assert f" | {agreement:.1%} | " in text  # why int8 is (not) servable: both measures of its gate
    assert "| mlp-small | onnx-int8 | 1 |" in text  # latency from the benchmark
    assert "Not run yet" not in text
    for plot in ("quality.png", "latency.png", "cost.png"):
        assert (out / plot).stat().st_size > 5000
        assert f"]({plot})" in text
    assert text.count("met:") + text.count("MISSED:") >= 4
    if "- not judged: mlp-small" in text:  # a library read faster than the read kernel in this run
        assert "the read_gbps peak" in text
    else:
        assert "reads its weights at" in text  # the MLP's int8 goal says how near the bandwidth it ran
        assert "of that peak" in text  # and how far the libraries alone are from the hardware's read rate
    assert "data:image/png;base64," in (out / "report.html").read_text()
    (cost,) = made["costs"]
    assert cost["ec2_usd_per_million"] == pytest.approx(
        report.ec2_usd_per_million(
            max(lv["throughput_per_s"] for m in serving_result["models"] for lv in m["levels"]),
            report.Prices(ec2_usd_per_hour=0.5),
        )
    )  # the best layout: what an operator picks
    assert cost["lambda_usd_per_million"] > 3.70  # requests and API Gateway alone
    block = readme.read_text()
    assert block.startswith(f"intro\n{report.README_START}\n")
    assert "| Lambda $/M |" in block
    assert "#### Goals" in block
    assert "![" not in block  # the plots stay in the report: the results folder is not committed
    client = MlflowClient(uri)
    run = client.get_run(made["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith(f"{trained.root}/mlartifacts/")  # beside the store, as fit.py's
    assert run.data.params["ec2_usd_per_hour"] == "0.5"
    assert run.data.tags["source_run.mlp-64-32"] == made["runs"][0]["run_id"]
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/cost.png"} <= logged


def test_report_names_a_corrupt_result_file(tmp_path: Path) -> None:
    (tmp_path / "serving.json").write_text('{"machine": ')
    with pytest.raises(SystemExit, match=r"serving.json is not valid JSON .*python -m bench.serving"):
        report.main(["--results", str(tmp_path), "--out", str(tmp_path / "report"), "--no-mlflow"])
    assert (tmp_path / "serving.json").read_text() == '{"machine": '


@pytest.mark.parametrize(
    ("name", "result"),
    [
        ("serving", {"models": [{"model": "mlp", "levels": []}]}),  # before layouts
        ("training", {"rows": [{"config": "mlp.yaml", "mode": "fit", "images_per_s": 9.0}]}),  # before the wait
    ],
)
def test_report_refuses_a_result_in_an_older_format(tmp_path: Path, name: str, result: dict) -> None:
    (tmp_path / f"{name}.json").write_text(json.dumps(result))
    with pytest.raises(SystemExit, match=rf"{name}.json was written by an older bench.{name}; run python -m bench"):
        report.main(["--results", str(tmp_path), "--out", str(tmp_path / "report"), "--no-mlflow"])


def test_report_without_benchmarks_or_runs_says_what_to_run(tmp_path: Path) -> None:
    made = report.main(
        [
            "--results",
            str(tmp_path / "none"),
            "--tracking-uri",
            f"sqlite:///{tmp_path}/none.db",
            "--out",
            str(tmp_path / "report"),
            "--no-mlflow",
        ]
    )
    text = (tmp_path / "report" / "report.md").read_text()
    assert "Not run yet: `python -m bench.inference`" in text
    assert f"No MLflow store at {tmp_path}/none.db: train one" in text
    assert made["mlflow_run_id"] is None
    assert not (tmp_path / "none.db").exists()


def test_report_names_the_experiment_it_found_no_run_in(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(uri).search_experiments()  # an existing store, without the experiment asked for
    report.main(
        [
            "--results",
            str(tmp_path / "none"),
            "--tracking-uri",
            uri,
            "--experiment",
            "mhsit",
            "--out",
            str(tmp_path / "report"),
            "--no-mlflow",
        ]
    )
    assert (
        f"No exported run in experiment 'mhsit' at {uri}: train one" in (tmp_path / "report" / "report.md").read_text()
    )


def test_report_refuses_a_store_that_does_not_exist_before_writing(tmp_path: Path) -> None:
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "report.md").write_text("the last report")
    missing = tmp_path / "typo.db"
    with pytest.raises(SystemExit, match=f"there is no MLflow store at {missing}.*--no-mlflow"):
        report.main(
            [
                "--results",
                str(tmp_path / "none"),
                "--tracking-uri",
                f"sqlite:///{missing}",
                "--out",
                str(tmp_path / "report"),
            ]
        )
    assert (tmp_path / "report" / "report.md").read_text() == "the last report"
    assert not missing.exists()  # MLflow would have made an empty store there, and logged the report into it


def test_a_floor_a_library_beats_is_not_judged() -> None:
    """On an AVX2-only Zen 3 the int8 kernel once spilled its registers: 272 GOP/s, where onnxruntime's
    int8 matmuls reached 362 in the ViT, so the ViT's int8 "floor" read 0.96x, a goal met by a wrong
    peak. A peak a library beats by more than noise judges no goal; the fp32 one still does."""
    served = {"model": "vit_base_patch16_224", "batch": 8, "served": True, "median_ms_per_image": 127.4}
    rows = [
        {**served, "runtime": "onnx-int8", "floor": "FLOPs / int8 peak", "vs_floor": 0.96, "best_vs_floor": 0.95}
        | {"profile": {"fp32_matmul_gflops": 142.0, "integer_matmul_gflops": 362.1, "matmul_share": 0.8}},
        {**served, "model": "mlp", "batch": 1, "runtime": "onnx-int8", "floor": "weights / bandwidth"}
        | {"vs_floor": 1.09, "best_vs_floor": 1.06, "size_mb": 360.4, "median_ms_per_image": 12.3},
    ]
    result = {
        "ceilings": {"fp32_gflops": 204.1, "int8_gops": 271.9, "read_gbps": 29.4},
        "probes": {"matmul_gflops": {"onnxruntime 3072^3": 166.0}, "memory_gbps": {"torch sum": 33.0}},
        "rows": rows,
    }
    beaten = report.beaten_peaks(result)
    assert set(beaten) == {"int8_gops", "read_gbps"}  # torch's sum read 33 GB/s against a 29.4 "peak"
    assert "362" in beaten["int8_gops"]
    assert "272" in beaten["int8_gops"]
    lines = report.goals_section({"inference": result}).text
    assert [line.split(":")[0] for line in lines if "its floor" in line] == ["- not judged", "- not judged"]
    result["ceilings"] |= {"int8_gops": 366.5, "read_gbps": 33.0}  # 362 and 33 are within noise of these
    for row in rows:  # and the rows, against these peaks, are about at their floors
        row["best_vs_floor"] = 1.0
    assert report.beaten_peaks(result) == {}
    verdicts = [line.split(":")[0] for line in report.goals_section({"inference": result}).text if "floor" in line]
    assert verdicts == ["- met", "- met"]


def test_a_whole_model_faster_than_its_floor_beats_the_peak() -> None:
    """On an AMX Xeon, before the AMX kernels, OpenVINO's bf16 ViT ran at 0.28x its floor at the AVX-512
    bf16 peak: a model faster than its floor shows the peak kernel is not the CPU's best, whatever its
    library's profile says; so do OpenVINO's matrix nodes alone faster than it."""
    row = {"model": "vit_base_patch16_224", "batch": 8, "runtime": "openvino-bf16", "floor": "FLOPs / bf16 peak"}
    result = {"ceilings": {"fp32_gflops": 267.0, "bf16_gflops": 136.0}, "probes": {}, "rows": [row]}
    assert report.floor_kind(row) == "bf16_gflops"
    assert report.beaten_peaks(result | {"rows": [row | {"best_vs_floor": 0.97}]}) == {}  # noise
    beaten = report.beaten_peaks(result | {"rows": [row | {"best_vs_floor": 0.28}]})
    assert list(beaten) == ["bf16_gflops"]
    assert "openvino-bf16" in beaten["bf16_gflops"]
    assert "486" in beaten["bf16_gflops"]  # 136 / 0.28
    counted = row | {"best_vs_floor": 0.97, "openvino_profile": {"matrix_gops": 500.0}}
    assert "openvino-bf16's matrix nodes" in report.beaten_peaks(result | {"rows": [counted]})["bf16_gflops"]
    probed = {"bf16_matmul_gflops": {"torch bf16 3072^3": 900.0}}  # a library probe alone beats it too
    assert "torch bf16 3072^3 alone" in report.beaten_peaks(result | {"probes": probed})["bf16_gflops"]


def test_openvino_counters_split_a_vit_run_into_matrix_work_and_the_rest(tmp_path: Path) -> None:
    """A two-block ViT in OpenVINO with its own counters: per node type, the matrix nodes' share, and the
    model's FLOPs over their time; the table names the kernels they ran and the peak of the row's floor."""
    from training.networks import TimmClassifier
    from training.onnx_export import export_onnx

    net = TimmClassifier("vit_tiny_patch16_224", pretrained=False, model_kwargs={"depth": 2}).eval()
    path, flops = export_onnx(net, tmp_path / "model.onnx", 224), inference.vit_flops(net)
    counted = inference.openvino_breakdown(path, np.zeros((2, 3, 224, 224), np.float32), "f32", flops, runs=2)
    ops = counted["ops_ms_per_image"]
    assert counted["kernel_ms_per_image"] == pytest.approx(sum(ops.values()))
    assert "FullyConnected" in ops
    assert 0 < counted["matrix_share"] < 1  # layer norms, softmax, GELU are not matrix work
    matrix_s = sum(ops.get(node, 0.0) for node in inference.OPENVINO_MATRIX_NODES) / 1000
    assert counted["matrix_gops"] == pytest.approx(flops / matrix_s / 1e9)
    assert counted["matrix_kernels"]
    row = {"model": "vit", "runtime": "openvino-fp32", "batch": 2, "floor": "FLOPs / fp32 peak"}
    table = inference.openvino_profile_markdown(
        {"ceilings": {"fp32_gflops": 2 * counted["matrix_gops"]}, "rows": [row | {"openvino_profile": counted}]}
    )
    assert f"| vit | openvino-fp32 | 2 | {counted['kernel_ms_per_image']:.2f} |" in table
    assert f"| 0.50 | {counted['matrix_kernels'][0]}" in table
