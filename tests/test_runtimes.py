"""The two runtimes on the same files: OpenVINO reads what onnxruntime reads, and each is judged against
the fp32 answers the export recorded."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bench.common import sample_png
from inference import runtimes
from inference.environment import ServingSettings, SettingError
from inference.predictor import FILES, Predictor
from inference.runtimes import (
    FIDELITY_FLOOR,
    GROUPED,
    Fidelity,
    OnnxRuntimeGraph,
    OpenVinoGraph,
    ProbeRecord,
    choose,
    dequantize_activations,
    open_graph,
    openvino_core,
)
from inference.service import ModelHolder, ServingConfig
from training import onnx_export as ox
from training.networks import TimmClassifier

MODEL = "mlp-64-32"
BF16_ATOL = 1e-2  # bf16 keeps 8 bits of mantissa: the ViT-B's is 0.003 from fp32 (AMX Xeon and Zen 5)


@pytest.fixture(scope="module")
def vit_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A two-block ViT with the guard and the rollout, as fp32 and static int8."""
    from training.ood import fit_reference

    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("vit")
    net = TimmClassifier("vit_tiny_patch16_224", pretrained=False, model_kwargs={"depth": 2}).eval()
    guard = fit_reference(rng.normal(size=(40, 192)), np.r_[np.zeros(20), np.ones(20)])
    fp32 = ox.export_onnx(net, folder / FILES["fp32"], 224, ood=guard)
    calibration = [rng.normal(size=(4, 3, 224, 224)).astype(np.float32) for _ in range(2)]
    return {"fp32": fp32, "int8": ox.quantize_int8(fp32, folder / FILES["int8"], calibration)}


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_openvino_runs_the_file_as_onnxruntime_does(vit_files: dict[str, Path], variant: str) -> None:
    """Every output (probability, the guard's score, the rollout) of the same file, fp32 and static
    int8 QDQ, from each runtime, at two batch sizes; and the same answer for an image in any batch."""
    path = vit_files[variant]
    ox.write_metadata(path, {"model_name": "vit", "card": '{"a": [1, 2]}'})
    reference, candidate = OnnxRuntimeGraph.open(path, 2), OpenVinoGraph.open(path, 2)
    assert candidate.metadata == reference.metadata == {"model_name": "vit", "card": '{"a": [1, 2]}'}
    assert candidate.outputs == reference.outputs == {"probability", "ood_score", "attention_rollout"}
    names = ["probability", "ood_score", "attention_rollout"]
    images = np.random.default_rng(1).normal(size=(5, 3, 224, 224)).astype(np.float32)
    # the guard's score (about 15 here) is read as a multiple of its cut-off: relative. int8 on AVX-512 VNNI
    # rounds apart by 0.18% of it here (the two runtimes' kernels sum in another order), and onnxruntime's
    # AVX2 kernel sums u8*s8 pairs in int16 (probabilities 0.0017 apart)
    rtol, atol = {"fp32": (1e-3, 1e-3), "int8": (5e-3, 1e-2)}[variant]
    for batch in (images[:1], images):
        for got, expected in zip(candidate.run(names, batch), reference.run(names, batch), strict=True):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=atol, rtol=rtol)
    alone = np.concatenate([candidate.run(["probability"], images[i : i + 1])[0] for i in range(5)])
    assert np.max(np.abs(candidate.run(["probability"], images)[0] - alone)) <= 1e-6


def without_activation_quantization(path: Path, to: Path) -> Path:
    """The QDQ file with each activation's QuantizeLinear -> DequantizeLinear pair taken out, in ONNX itself:
    an account of ``int8-weights`` independent of OpenVINO's reading of the file."""
    import onnx

    model = onnx.load(path)
    weights = {tensor.name for tensor in model.graph.initializer}
    made_by = {output: node for node in model.graph.node for output in node.output}
    kept, taken = [], {}
    for node in model.graph.node:
        quantize = made_by.get(node.input[0]) if node.op_type == "DequantizeLinear" else None
        if quantize is not None and quantize.op_type == "QuantizeLinear" and quantize.input[0] not in weights:
            taken[node.output[0]] = quantize.input[0]
        elif node.op_type != "QuantizeLinear" or node.input[0] in weights:
            kept.append(node)
    for node in kept:
        node.input[:] = [taken.get(name, name) for name in node.input]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.save(model, to)
    return to


def test_openvino_runs_an_mlps_int8_file_with_its_activations_quantized_image_by_image(
    model_store: Path, vit_files: dict[str, Path], tmp_path: Path
) -> None:
    """Every activation's quantize-dequantize rewired, the weights' kept: without OpenVINO's own quantizing
    of the activations the answers are onnxruntime's on the file with those pairs taken out in ONNX; with
    it, alike in any batch and within the file's allowance of fp32. A ViT (its products take tokens) and a
    fp32 file are not run so."""
    path = model_store / MODEL / FILES["int8"]
    model = openvino_core().read_model(str(path))
    quantized = [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    assert len(quantized) == 3  # into each of its Gemms: the image, and each hidden layer
    assert dequantize_activations(model) == 3
    assert not [op for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize"]
    images = np.random.default_rng(2).normal(size=(5, 3, 224, 224)).astype(np.float32)
    unquantized = OpenVinoGraph.compile(path, model, {}, 2, "fp32", {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0})
    account = OnnxRuntimeGraph.open(without_activation_quantization(path, tmp_path / "weights-only.onnx"), 2)
    np.testing.assert_allclose(
        unquantized.run(["probability"], images)[0], account.run(["probability"], images)[0], atol=1e-6
    )
    graph = OpenVinoGraph.open_grouped(path, 2)
    assert graph.precision == GROUPED
    (answers,) = graph.run(["probability"], images)
    alone = np.concatenate([graph.run(["probability"], images[i : i + 1])[0] for i in range(5)])
    assert np.max(np.abs(answers - alone)) <= 1e-6
    assert runtimes.judge(graph, ProbeRecord.model_validate(graph.metadata)).within
    ox.write_metadata(vit_files["int8"], {"precision": "int8"})
    assert OpenVinoGraph.open_grouped(vit_files["int8"], 2) is None
    assert OpenVinoGraph.open_grouped(model_store / MODEL / FILES["fp32"], 2) is None


def test_auto_measures_both_runtimes_and_serves_the_faster(model_store: Path, caplog) -> None:
    path = model_store / MODEL / FILES["int8"]
    with caplog.at_level(logging.INFO, logger="inference.runtimes"):
        graph = open_graph(path, "auto", 2)
    (measured,) = [r.getMessage() for r in caplog.records if "ms/image" in r.getMessage()]
    assert all(f"{name} " in measured for name in ("onnxruntime", "openvino", f"openvino {GROUPED}"))
    assert measured.endswith(f"; serving {runtimes.label(graph)}")
    predictor = Predictor.load(path, runtime="auto")
    png = sample_png(size=64)
    assert predictor.card()["runtime"] in {"onnxruntime", "openvino"}
    by_name = Predictor.load(path, runtime="openvino")
    assert by_name.card()["runtime"] == "openvino"
    # each within its allowance of the fp32 answers: within twice that of each other
    allowed = 2 * by_name.card()["fidelity"]["allowed"]
    np.testing.assert_allclose(by_name.probabilities([png]), Predictor.load(path).probabilities([png]), atol=allowed)


def test_the_export_records_what_every_runtime_is_judged_by(model_store: Path) -> None:
    """A real fit's files: the fp32 answers on the probe batch in both, each file's own distance from them;
    onnxruntime on the exporting CPU measures that distance again, and the card serves all of it."""
    fp32, int8 = (ox.read_metadata(model_store / MODEL / FILES[variant]) for variant in ("fp32", "int8"))
    answers = json.loads(fp32["probe_fp32"])
    assert answers == json.loads(int8["probe_fp32"])
    assert len(answers) == runtimes.PROBE_IMAGES
    assert all(0 <= p <= 1 for p in answers)
    assert fp32["probe_distance"] == "0"
    at_export = float(int8["probe_distance"])
    assert at_export > 0  # int8 rounds
    whole = runtimes.judge(OnnxRuntimeGraph.open(model_store / MODEL / FILES["int8"], 2), ProbeRecord(**int8))
    assert whole.measured == pytest.approx(at_export, rel=1e-4, abs=1e-7)
    card = Predictor.load(model_store / MODEL / FILES["int8"], runtime="onnxruntime", threads=2).card()
    assert card["fidelity"]["measured"] <= whole.measured + 1e-7  # by name: the first probe image alone
    assert card["fidelity"] | {"measured": 0} == {
        "measured": 0,
        "allowed": max(2 * at_export, FIDELITY_FLOOR),
        "at_export": at_export,
        "within": True,
        "images": runtimes.JUDGED_ALONE_IMAGES,
    }
    assert Predictor.load(model_store / MODEL / FILES["fp32"]).card()["fidelity"]["measured"] < 1e-6


def test_openvino_is_judged_on_the_int8_vit_as_onnxruntime_exported_it(vit_files: dict[str, Path]) -> None:
    """The static int8 ViT as exported with its record: both runtimes judged against fp32's answers."""
    int8 = vit_files["int8"]
    ox.write_metadata(
        int8, {"input_size": [3, 224, 224], "precision": "int8", **ox.probe_records(vit_files["fp32"], [int8], 224)[0]}
    )
    at_export = float(ox.read_metadata(int8)["probe_distance"])
    graphs = [OnnxRuntimeGraph.open(int8, 2), OpenVinoGraph.open(int8, 2)]
    record = ProbeRecord.model_validate(ox.read_metadata(int8))
    fidelities = [runtimes.judge(graph, record) for graph in graphs]
    assert fidelities[0].measured == pytest.approx(at_export, rel=1e-4, abs=1e-7)
    assert all(f.allowed == max(2 * at_export, FIDELITY_FLOOR) for f in fidelities)
    assert fidelities[1].measured < 0.05  # a number in the log and the card, whichever side of the allowance


@dataclass
class StandIn:
    """A stand-in runtime: fixed answers at a fixed cost, for the choice alone."""

    runtime: str
    metadata: dict[str, str]
    answers: np.ndarray
    seconds: float = 0.0
    precision: str = "int8"
    outputs: frozenset[str] = frozenset({"probability"})
    fidelity: Fidelity | None = None

    def run(self, names: list[str], batch: np.ndarray) -> list[np.ndarray]:
        time.sleep(self.seconds)
        return [self.answers[: len(batch)]]


FP32_ANSWERS = np.array([0.2, 0.4, 0.6, 0.8])
RECORD = {"input_size": "[3, 8, 8]", "probe_fp32": json.dumps(FP32_ANSWERS.tolist()), "probe_distance": "0.005"}


def test_auto_serves_the_faster_of_runtimes_that_reproduce_fp32_however_far_apart(monkeypatch, caplog) -> None:
    """OpenVINO 0.003 from the fp32 answers and onnxruntime 0.009 (allowed: 2 x 0.005): 0.012 apart, which
    judged against each other refused OpenVINO; against fp32 both reproduce the file, and the faster serves."""
    monkeypatch.setattr(runtimes, "PROBE_SETTLE_S", 0.0)
    onnx = StandIn("onnxruntime", RECORD, FP32_ANSWERS + 0.009, seconds=0.02)
    openvino = StandIn("openvino", RECORD, FP32_ANSWERS - 0.003)
    with caplog.at_level(logging.INFO, logger="inference.runtimes"):
        assert choose(Path("m.onnx"), [onnx, openvino]) is openvino
    assert onnx.fidelity == Fidelity(pytest.approx(0.009), 0.005, 0.01, images=4)
    assert openvino.fidelity.within
    (line,) = [r.getMessage() for r in caplog.records]
    assert "openvino 0.003 from the fp32 answers (allowed 0.01; 0.005 at export)" in line
    assert line.endswith("; serving openvino")


def test_where_no_runtime_reproduces_fp32_the_closest_serves_with_a_warning(caplog) -> None:
    onnx = StandIn("onnxruntime", RECORD, FP32_ANSWERS + 0.05)
    openvino = StandIn("openvino", RECORD, FP32_ANSWERS - 0.03, seconds=1.0)  # slower: not timed at all
    with caplog.at_level(logging.WARNING, logger="inference.runtimes"):
        assert choose(Path("m.onnx"), [onnx, openvino]) is openvino
    (warning,) = caplog.records
    assert warning.getMessage().startswith("m.onnx: no runtime reproduces the exported answers: onnxruntime 0.05 ")
    assert warning.getMessage().endswith("; serving the closest, openvino")
    card = Predictor(Path("m.onnx"), openvino, {"threshold": "0.5"}).card()
    assert card["fidelity"] == {
        "measured": pytest.approx(0.03),
        "allowed": 0.01,
        "at_export": 0.005,
        "within": False,
        "images": 4,
    }


def test_a_file_recorded_on_another_cpu_is_served_with_the_distance_in_the_log_and_card(
    model_store: Path, tmp_path: Path, caplog
) -> None:
    """A file gated where int8 rounded 1e-4 from fp32, here 0.05 (a recorded answer moved, as another CPU's
    kernel would): every runtime is outside the allowance; the closest serves, and says so."""
    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    path = store / MODEL / FILES["int8"]
    metadata = ox.read_metadata(path)
    answers = np.array(json.loads(metadata["probe_fp32"]))
    moved = np.where(answers < 0.5, answers + 0.05, answers - 0.05)
    ox.write_metadata(path, {**metadata, "probe_fp32": moved.tolist(), "probe_distance": "0.0001"})
    with caplog.at_level(logging.WARNING, logger="inference.runtimes"):
        predictor = Predictor.load(path, runtime="auto", threads=2)
        by_name = Predictor.load(path, runtime="onnxruntime", threads=2)
    fidelity = predictor.card()["fidelity"]
    assert (fidelity["allowed"], fidelity["at_export"], fidelity["within"]) == (FIDELITY_FLOOR, 0.0001, False)
    assert fidelity["measured"] == pytest.approx(0.05, abs=float(metadata["probe_distance"]) + 1e-6)  # int8's own
    messages = [r.getMessage() for r in caplog.records]
    assert any("no runtime reproduces the exported answers" in m for m in messages)
    assert any(m.endswith("served because onnxruntime was asked for by name") for m in messages)
    assert by_name.card()["fidelity"]["within"] is False
    assert by_name.card()["fidelity"]["images"] == runtimes.JUDGED_ALONE_IMAGES  # nothing to choose between


def test_a_file_without_a_record_is_served_by_onnxruntime(model_store: Path, tmp_path: Path, caplog) -> None:
    """Files exported before the record: onnxruntime, the runtime their int8 gate ran on; nothing judged."""
    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    path = store / MODEL / FILES["int8"]
    metadata = ox.read_metadata(path)
    ox.write_metadata(path, {k: v for k, v in metadata.items() if not k.startswith("probe_")})
    with caplog.at_level(logging.INFO, logger="inference.runtimes"):
        predictor = Predictor.load(path, runtime="auto", threads=2)
    assert (predictor.card()["runtime"], predictor.card()["fidelity"]) == ("onnxruntime", None)
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.endswith(
        "records no probe answers (exported before they were); serving onnxruntime, the runtime its int8 gate ran on"
    )


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        ({"probe_fp32": "[0.1, 0.2"}, "probe_fp32='[0.1, 0.2': Invalid JSON"),
        ({"probe_fp32": "[0.1, 0.2]"}, "probe_fp32=[0.1, 0.2]: List should have at least 4 items"),
        ({"probe_distance": "-1"}, "probe_distance='-1': Input should be greater than or equal to 0"),
    ],
)
def test_a_record_that_cannot_be_read_is_named_and_the_file_served_unjudged(
    model_store: Path, tmp_path: Path, caplog, damage: dict[str, str], named: str
) -> None:
    """A damaged record is not a reason to refuse a gated file, nor to judge it by a wrong answer: the
    file is served as one without a record would be, and the warning names the field and what is wrong."""
    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    path = store / MODEL / FILES["int8"]
    ox.write_metadata(path, {**ox.read_metadata(path), **damage})
    with caplog.at_level(logging.WARNING, logger="inference.runtimes"):
        cards = [Predictor.load(path, runtime=runtime, threads=2).card() for runtime in ("auto", "onnxruntime")]
    assert [(card["runtime"], card["fidelity"]) for card in cards] == [("onnxruntime", None)] * 2
    assert [r.levelname for r in caplog.records] == ["WARNING"] * 2
    auto, by_name = (r.getMessage() for r in caplog.records)
    assert named in auto
    assert auto.endswith("serving onnxruntime, the runtime its int8 gate ran on")
    assert by_name.endswith("onnxruntime, asked for by name, serves it unjudged")


def test_without_openvino_auto_judges_the_first_probe_image_only(model_store: Path, monkeypatch, caplog) -> None:
    """The Lambda image: onnxruntime alone, nothing to choose between, so the judgement costs one image of
    the cold start, not the probe batch's eight; the log and card still say how close it is."""
    monkeypatch.setattr(runtimes, "openvino_installed", lambda: False)
    with caplog.at_level(logging.INFO, logger="inference.runtimes"):
        card = Predictor.load(model_store / MODEL / FILES["int8"], runtime="auto", threads=2).card()
    assert (card["runtime"], card["fidelity"]["images"], card["fidelity"]["within"]) == ("onnxruntime", 1, True)
    (line,) = [r.getMessage() for r in caplog.records]
    assert "onnxruntime " in line
    assert line.endswith("; serving onnxruntime")


def test_a_runtime_that_is_not_there_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Lambda image has no OpenVINO: asking for it by name stops the process at its settings."""
    with pytest.raises(SettingError, match="^MODEL_RUNTIME='tensorrt': Input should be 'auto', 'onnxruntime' or"):
        ServingSettings.read({"MODEL_RUNTIME": "tensorrt"})
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])  # as in the Lambda image
    monkeypatch.delitem(sys.modules, "openvino", raising=False)
    with pytest.raises(SettingError, match="MODEL_RUNTIME='openvino': OpenVINO is not installed here"):
        ServingSettings.read({"MODEL_RUNTIME": "openvino"})
    assert ServingSettings.read({}).runtime == "auto"


def test_openvino_sends_no_telemetry(model_store: Path, tmp_path: Path) -> None:
    """With its telemetry package installed, ``import openvino`` writes a client id under ~/intel and sends
    an "import" event to Google Analytics (consent is assumed where no consent file exists, except
    under CI=true). Serving imports it with the package's own stub instead; a fresh process, so that
    no earlier import decides."""
    script = (
        "import sys; from inference.predictor import Predictor; from pathlib import Path; "
        f"p = Predictor.load(Path({str(model_store / MODEL / FILES['fp32'])!r}), runtime='openvino'); "
        "from openvino.tools.ovc import telemetry_utils; print(telemetry_utils.tm.__name__, p.graph.runtime)"
    )
    env = {**os.environ, "HOME": str(tmp_path), "CI": ""}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "openvino"]
    assert not (tmp_path / "intel").exists()  # no client id, no consent file


def test_reloads_do_not_leave_the_thread_on_a_freed_signal_stack(model_store: Path) -> None:
    """Each openvino.Core's CPU plugin installs a signal stack and puts back the one it found when it
    goes; two Cores released first-in-first-out left the thread on the first one's freed stack, and a
    later SIGCHLD killed the test process with SIGSEGV. One Core per process: the stack stays put."""
    script = f"""
import ctypes, gc
from pathlib import Path
from inference.predictor import Predictor

class Stack(ctypes.Structure):
    _fields_ = [("sp", ctypes.c_void_p), ("flags", ctypes.c_int), ("size", ctypes.c_size_t)]

def stack():
    current = Stack()
    ctypes.CDLL(None).sigaltstack(None, ctypes.byref(current))
    return current.sp

path = Path({str(model_store / MODEL / FILES["fp32"])!r})
first = Predictor.load(path, runtime="openvino")
installed = stack()
second = Predictor.load(path, runtime="openvino")  # a reload: the new model, then the old one goes
del first
gc.collect()
del second
gc.collect()
print(installed is not None, stack() == installed)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


def test_bf16_is_the_fp32_file_computed_by_openvino_in_bfloat16(vit_files: dict[str, Path], caplog) -> None:
    """``MODEL_VARIANT=bf16``: OpenVINO on the fp32 file with its bf16 hint, in bfloat16 where the CPU has
    bf16 instructions (OpenVINO's own report of them) and in fp32, said in a warning, where it has none;
    either way it agrees with fp32 as closely as int8 must, and an image's answer is the same in any batch."""
    native = "BF16" in openvino_core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    with caplog.at_level(logging.WARNING, logger="inference.runtimes"):
        graph = open_graph(vit_files["fp32"], "auto", 2, "bf16")
    assert (graph.runtime, graph.precision) == ("openvino", "bf16" if native else "fp32")
    assert any("has no bf16 instructions" in r.getMessage() for r in caplog.records) is not native
    images = np.random.default_rng(2).normal(size=(5, 3, 224, 224)).astype(np.float32)
    (reference,) = OnnxRuntimeGraph.open(vit_files["fp32"], 2).run(["probability"], images)
    (batched,) = graph.run(["probability"], images)
    assert np.max(np.abs(batched - reference)) <= BF16_ATOL
    alone = np.concatenate([graph.run(["probability"], images[i : i + 1])[0] for i in range(5)])
    assert np.max(np.abs(batched - alone)) <= 1e-6
    with pytest.raises(ValueError, match="onnxruntime's CPU provider does not compute in bf16"):
        open_graph(vit_files["fp32"], "onnxruntime", 2, "bf16")


def test_the_bf16_variant_is_served_from_the_fp32_file(model_store: Path) -> None:
    holder = ModelHolder(
        ServingConfig.from_env({"MODEL_ROOT": str(model_store), "MODEL_NAME": MODEL, "MODEL_VARIANT": "bf16"})
    )
    card = holder.get().card()
    assert (card["file"], card["runtime"], card["precision"]) == ("model.onnx", "openvino", "fp32")  # the file's
    assert card["computed_in"] in {"bf16", "fp32"}  # the CPU's: bf16 where it has the instructions
    fp32 = Predictor.load(model_store / MODEL / FILES["fp32"])
    png = sample_png(size=64)
    np.testing.assert_allclose(holder.get().probabilities([png]), fp32.probabilities([png]), atol=BF16_ATOL)
    fidelity = card["fidelity"]  # reported, not judged: no gate ran in bf16
    assert (fidelity["allowed"], fidelity["at_export"], fidelity["within"]) == (None, 0.0, None)
    assert fidelity["measured"] <= BF16_ATOL


def test_bf16_without_openvino_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        SettingError, match="^MODEL_VARIANT='bf16' is computed by OpenVINO: MODEL_RUNTIME='onnxruntime' has no"
    ):
        ServingSettings.read({"MODEL_VARIANT": "bf16", "MODEL_RUNTIME": "onnxruntime"})
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])  # as in the Lambda image
    monkeypatch.delitem(sys.modules, "openvino", raising=False)
    with pytest.raises(SettingError, match="^MODEL_VARIANT='bf16' is computed by OpenVINO: OpenVINO is not installed"):
        ServingSettings.read({"MODEL_VARIANT": "bf16"})
