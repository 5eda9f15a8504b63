"""The two runtimes on the same files: OpenVINO reads what onnxruntime reads, and agrees with it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.common import sample_png
from inference.environment import ServingSettings, SettingError
from inference.predictor import FILES, Predictor
from inference.runtimes import (
    AGREEMENT_ATOL,
    OnnxRuntimeGraph,
    OpenVinoGraph,
    agreement_atol,
    open_graph,
    openvino_core,
)
from inference.service import ModelHolder, ServingConfig
from training import onnx_export as ox
from training.networks import TimmClassifier

MODEL = "mlp-64-32"


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
    # rounds apart by 0.18% of it here (the two runtimes' kernels sum in another order)
    rtol = {"fp32": 1e-3, "int8": 5e-3}[variant]
    for batch in (images[:1], images):
        for got, expected in zip(candidate.run(names, batch), reference.run(names, batch), strict=True):
            assert got.shape == expected.shape
            np.testing.assert_allclose(got, expected, atol=AGREEMENT_ATOL[variant], rtol=rtol)
    alone = np.concatenate([candidate.run(["probability"], images[i : i + 1])[0] for i in range(5)])
    assert np.max(np.abs(candidate.run(["probability"], images)[0] - alone)) <= 1e-6


def test_auto_measures_both_runtimes_and_serves_the_faster(model_store: Path, caplog) -> None:
    path = model_store / MODEL / FILES["int8"]
    with caplog.at_level(logging.INFO, logger="inference.runtimes"):
        graph = open_graph(path, "auto", 2)
    (measured,) = [r.getMessage() for r in caplog.records if "ms/image" in r.getMessage()]
    assert "onnxruntime" in measured
    assert "openvino" in measured
    assert f"; serving {graph.runtime} (they agree to " in measured
    predictor = Predictor.load(path, runtime="auto")
    png = sample_png(size=64)
    assert predictor.card()["runtime"] in {"onnxruntime", "openvino"}
    by_name = Predictor.load(path, runtime="openvino")
    assert by_name.card()["runtime"] == "openvino"
    np.testing.assert_allclose(
        by_name.probabilities([png]), Predictor.load(path).probabilities([png]), atol=agreement_atol(by_name.metadata)
    )


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
    assert np.max(np.abs(batched - reference)) <= AGREEMENT_ATOL["int8"]
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
    np.testing.assert_allclose(
        holder.get().probabilities([png]), fp32.probabilities([png]), atol=AGREEMENT_ATOL["int8"]
    )


def test_bf16_without_openvino_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        SettingError, match="^MODEL_VARIANT='bf16' is computed by OpenVINO: MODEL_RUNTIME='onnxruntime' has no"
    ):
        ServingSettings.read({"MODEL_VARIANT": "bf16", "MODEL_RUNTIME": "onnxruntime"})
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])  # as in the Lambda image
    monkeypatch.delitem(sys.modules, "openvino", raising=False)
    with pytest.raises(SettingError, match="^MODEL_VARIANT='bf16' is computed by OpenVINO: OpenVINO is not installed"):
        ServingSettings.read({"MODEL_VARIANT": "bf16"})
