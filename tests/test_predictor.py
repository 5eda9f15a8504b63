"""The predictor on its own: model choice, guards, batch scoring command."""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.common import sample_png
from inference import errors
from inference.limits import Limits
from inference.predictor import Predictor, resolve_model_path
from tests.conftest import REPO
from training.onnx_export import read_metadata, write_metadata

MODEL = "mlp-64-32"


def run_batch(
    source: object, output: Path, model_store: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``python -m inference.batch`` as a user runs it, on the test model."""
    command = ["-m", "inference.batch", str(source), str(output), "--model-root", str(model_store)]
    return subprocess.run(
        [sys.executable, *command, "--model-name", MODEL],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_auto_takes_int8_only_where_its_gate_passed(model_store: Path, tmp_path: Path) -> None:
    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    int8 = store / MODEL / "model.int8.onnx"
    write_metadata(int8, {**read_metadata(int8), "servable": "true"})
    assert resolve_model_path(store, MODEL) == int8
    write_metadata(int8, {**read_metadata(int8), "servable": "false"})
    assert resolve_model_path(store, MODEL) == store / MODEL / "model.onnx"
    int8.unlink()
    assert resolve_model_path(store, MODEL) == store / MODEL / "model.onnx"
    assert resolve_model_path(store, MODEL, "int8") == int8


def test_auto_reads_the_int8_verdict_once_per_file_version(
    model_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload check runs every second: it must not load the int8 model each time."""
    import onnxruntime as ort

    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    int8 = store / MODEL / "model.int8.onnx"
    write_metadata(int8, {**read_metadata(int8), "servable": "true"})
    sessions = []
    real = ort.InferenceSession
    monkeypatch.setattr(ort, "InferenceSession", lambda *a, **k: sessions.append(a) or real(*a, **k))
    for _ in range(5):
        assert resolve_model_path(store, MODEL) == int8
    assert len(sessions) == 1
    write_metadata(int8, {**read_metadata(int8), "servable": "false"})  # a new version of the file
    assert resolve_model_path(store, MODEL) == store / MODEL / "model.onnx"


def test_a_model_without_metadata_is_refused_by_name(model_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    shutil.copy(model_store / MODEL / "model.onnx", path)
    write_metadata(path, {"model_name": "bare"})
    with pytest.raises(errors.ServingError, match=r"lacks metadata \['threshold'"):
        Predictor.load(path)


def test_guards_have_their_own_codes(model_store: Path) -> None:
    predictor = Predictor.load(model_store / MODEL / "model.onnx", limits=Limits(max_bytes=100, max_batch=2))
    cases = {"empty_body": [], "too_many_images": [b"x"] * 3, "payload_too_large": [b"x" * 101]}
    for code, images in cases.items():
        with pytest.raises(errors.ServingError) as error:
            predictor.predict(images)
        assert error.value.code == code


def test_concurrent_callers_take_turns_on_the_session(model_store: Path) -> None:
    """The session's threads already use every core it was given: two runs at once only fight for
    them (the serving benchmark measured 30% less throughput), so callers queue while decoding overlaps."""
    import threading
    import time

    from bench.common import sample_png

    predictor = Predictor.load(resolve_model_path(model_store, MODEL, "fp32"), threads=1)
    real_graph, state = predictor.graph, {"running": 0, "most": 0}
    guard = threading.Lock()

    class CountingGraph:  # the real graph, with a count of runs in flight
        def run(self, *args: object, **kwargs: object) -> list:
            with guard:
                state["running"] += 1
                state["most"] = max(state["most"], state["running"])
            time.sleep(0.02)
            try:
                return real_graph.run(*args, **kwargs)
            finally:
                with guard:
                    state["running"] -= 1

    predictor.graph = CountingGraph()
    png = sample_png(size=64)
    answers: list = []
    threads = [threading.Thread(target=lambda: answers.extend(predictor.predict([png]))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4
    assert len({a["probability"] for a in answers}) == 1
    assert state["most"] == 1


def test_an_int8_that_failed_its_gate_is_served_by_name_with_a_warning(
    model_store: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MODEL_VARIANT=int8 or --variant int8 served a file that failed its quality gate without a word."""
    folder = Path(shutil.copytree(model_store / MODEL, tmp_path / MODEL))
    int8 = folder / "model.int8.onnx"
    write_metadata(
        int8, {**read_metadata(int8), "servable": "false", "int8_auroc_drop": "0.02", "int8_label_agreement": "0.97"}
    )
    assert resolve_model_path(tmp_path, MODEL, "auto") == folder / "model.onnx"
    with caplog.at_level("WARNING", logger="inference.predictor"):
        Predictor.load(folder / "model.onnx")
        assert not caplog.records
        Predictor.load(resolve_model_path(tmp_path, MODEL, "int8"))
    (record,) = caplog.records
    assert record.getMessage() == (
        f"{int8} failed its quality gate against fp32 (AUROC drop 0.02, labels agreeing "
        "0.97); it is served because it was asked for by name"
    )


def test_batch_command_scores_an_mhist_folder(model_store: Path, small_copy: Path, tmp_path: Path) -> None:
    (small_copy / "images" / "demo_00002.png").write_bytes(b"broken")
    output = tmp_path / "scores.csv"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inference.batch",
            str(small_copy),
            str(output),
            "--model-root",
            str(model_store),
            "--model-name",
            MODEL,
            "--batch-size",
            "8",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(output.open()))
    assert len(rows) == 80
    answer = {"probability", "label", "threshold", "in_distribution", "ood_score", "ood_reason"}
    assert set(rows[0]) == {"image", *answer, "model_run_id", "error"}
    (broken,) = [r for r in rows if r["error"]]
    assert (broken["image"], broken["error"]) == ("demo_00002.png", "invalid_image")
    assert all(r["label"] in ("HP", "SSA") for r in rows if not r["error"])
    assert "scored 79 images (1 unreadable, " in result.stdout
    assert "against annotations.csv (79 images: 25 SSA, 54 HP): AUROC" in result.stdout
    assert "scoring" in result.stderr  # the progress bar


@pytest.mark.parametrize(
    ("source", "args", "message"),
    [
        ("nope", ["--model-name", MODEL], "is not a folder"),
        ("images", ["--model-name", "mlp-6432"], "error: no model mlp-6432 in {store} (there: mlp-64-32)"),
        ("images", ["--model-name", MODEL, "--batch-size", "0"], "--batch-size 0: expected at least 1"),
    ],
)
def test_batch_command_names_what_is_wrong(
    model_store: Path, small_root: Path, tmp_path: Path, source: str, args: list[str], message: str
) -> None:
    folder = small_root / source if source == "images" else tmp_path / source
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "inference.batch",
            str(folder),
            str(tmp_path / "o.csv"),
            "--model-root",
            str(model_store),
            *args,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert message.format(store=model_store) in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "o.csv").exists()


def batch_main(source: Path, output: Path, model_store: Path) -> str:
    """``inference.batch.main`` in-process (the S3 test runs the real command): its exit message."""
    from inference.batch import main

    with pytest.raises(SystemExit) as exited:
        main([str(source), str(output), "--model-root", str(model_store), "--model-name", MODEL])
    return str(exited.value.code)


def test_batch_command_scores_with_the_runtime_auto_judged(
    model_store: Path, small_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch job chooses its runtime as the EC2 service does: both runtimes judged against the
    export's fp32 answers (it ran onnxruntime by name, judging none beside it)."""
    from inference.batch import main

    with caplog.at_level(logging.INFO, logger="inference.runtimes"):
        main([str(small_root), str(tmp_path / "scores.csv"), "--model-root", str(model_store), "--model-name", MODEL])
    (choice,) = [r.getMessage() for r in caplog.records if r.name == "inference.runtimes"]
    assert "onnxruntime " in choice
    assert "openvino " in choice
    assert (tmp_path / "scores.csv").is_file()


def test_batch_command_refuses_broken_annotations_before_scoring(
    model_store: Path, small_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was a KeyError traceback, after every image had been scored."""
    text = (small_copy / "annotations.csv").read_text().replace("Partition", "Split", 1)
    (small_copy / "annotations.csv").write_text(text)
    message = batch_main(small_copy, tmp_path / "o.csv", model_store)
    assert message.startswith(f"error: {small_copy / 'annotations.csv'}: missing column(s) ['Partition']")
    assert "scoring" not in capsys.readouterr().err  # refused before the first image
    assert not (tmp_path / "o.csv").exists()


def test_batch_metrics_name_what_one_class_cannot_give(recwarn: pytest.WarningsRecorder) -> None:
    """A folder of SSA images only printed 'AUROC nan ... specificity nan' with numpy's warning."""
    import numpy as np

    from inference.batch import against_labels

    assert against_labels(np.array([0.9, 0.2]), np.array([1, 1]), 0.5) == (
        "against annotations.csv (2 images: 2 SSA, 0 HP): no AUROC (one class only), sensitivity 0.500 "
        "at threshold 0.500"
    )
    assert against_labels(np.array([0.9, 0.2, 0.1]), np.array([1, 0, 0]), 0.5) == (
        "against annotations.csv (3 images: 1 SSA, 2 HP): AUROC 1.000, sensitivity 1.000, specificity 1.000 "
        "at threshold 0.500"
    )
    assert not recwarn.list


def test_publish_installs_files_atomically_into_the_store(model_store: Path, tmp_path: Path) -> None:
    from inference.publish import install

    first = install(model_store / MODEL, tmp_path / "store")
    assert first == tmp_path / "store" / MODEL
    assert sorted(p.name for p in first.iterdir()) == ["card.json", "model.int8.onnx", "model.onnx"]
    inode = (first / "model.onnx").stat().st_ino
    install(model_store / MODEL, tmp_path / "store")
    assert (first / "model.onnx").stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert (first / "model.onnx").stat().st_mode & 0o777 == 0o644
    assert Predictor.load(first / "model.onnx").name == MODEL


def test_publish_never_leaves_two_runs_mixed_in_the_store(
    model_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run without an int8 file left the previous run's int8 beside the new fp32 (and ``auto``
    serves int8); a copy failing half-way replaced some files and not others."""
    import shutil

    from inference import publish

    store = tmp_path / "store"
    old = publish.install(model_store / MODEL, store)
    newer = Path(shutil.copytree(model_store / MODEL, tmp_path / "newer"))
    (newer / "model.int8.onnx").unlink()
    publish.install(newer, store)
    assert sorted(p.name for p in old.iterdir()) == ["card.json", "model.onnx"]

    publish.install(model_store / MODEL, store)
    before = {p.name: p.stat().st_ino for p in old.iterdir()}
    copies = []

    def disk_full_on_the_second_copy(source: Path, destination: str) -> None:  # a full disk cannot be made here
        copies.append(source)
        if len(copies) == 2:
            raise OSError(28, "No space left on device")
        shutil.copyfile(source, destination)

    monkeypatch.setattr(publish.shutil, "copyfile", disk_full_on_the_second_copy)
    with pytest.raises(
        SystemExit, match=r"cannot publish into .* \(No space left on device\); what was there is unchanged"
    ):
        publish.install(newer, store)
    assert {p.name: p.stat().st_ino for p in old.iterdir()} == before  # no file replaced, no temporary file left
    (tmp_path / "a file").write_text("")
    with pytest.raises(SystemExit, match=f"cannot publish into .* \\({tmp_path / 'a file'} is a file\\)"):
        publish.install(model_store / MODEL, tmp_path / "a file" / "store")


def test_publish_refuses_a_store_that_does_not_exist(tmp_path: Path) -> None:
    from inference.publish import main

    missing = tmp_path / "typo.db"
    with pytest.raises(SystemExit, match=f"--tracking-uri sqlite:///{missing}: there is no MLflow store at {missing}"):
        main(["--latest", MODEL, "--to", str(tmp_path / "models"), "--tracking-uri", f"sqlite:///{missing}"])
    assert not missing.exists()  # MLflow would have made an empty store there
    assert not (tmp_path / "models").exists()


def test_batch_command_scores_an_s3_prefix(model_store: Path, small_root: Path, tmp_path: Path) -> None:
    import os

    import boto3

    from tests.servers import S3_KEYS, s3_server

    with s3_server(tmp_path / "s3.log") as url:
        s3 = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="slides")
        names = sorted(p.name for p in (small_root / "images").iterdir())[:5]
        for name in names:
            s3.upload_file(str(small_root / "images" / name), "slides", f"batch-7/{name}")
        s3.put_object(Bucket="slides", Key="batch-7/notes.txt", Body=b"not an image")
        env = {**os.environ, **S3_KEYS, "AWS_ENDPOINT_URL_S3": url}

        result = run_batch("s3://slides/batch-7/", tmp_path / "s3.csv", model_store, env)
        missing = run_batch("s3://no-such-bucket/batch-7/", tmp_path / "none.csv", model_store, env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "s3.csv").open()))
    assert [r["image"] for r in rows] == names
    assert all(r["label"] in ("HP", "SSA") and not r["error"] for r in rows)
    assert missing.returncode != 0
    assert "error: cannot read s3://no-such-bucket/batch-7/: " in missing.stderr
    assert "NoSuchBucket" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_batch_scoring_keeps_its_rows_when_the_source_fails_half_way(
    model_store: Path, small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 failing in the middle of a listing cannot be provoked on demand against moto, so the
    source is a generator that fails after three images, as s3_images does on a botocore error."""
    from inference import batch

    images = sorted((small_root / "images").iterdir())[:3]

    def failing_source(uri: str):
        yield from ((p.name, p.read_bytes()) for p in images)
        raise errors.ServingError("no_images", f"cannot read {uri}: connection reset")

    monkeypatch.setattr(batch, "s3_images", failing_source)
    predictor = Predictor.load(model_store / MODEL / "model.onnx")
    output = tmp_path / "scores.csv"
    output.write_text("an earlier run's CSV\n")
    partial = tmp_path / "scores.csv.partial"
    with pytest.raises(errors.ServingError, match=f"connection reset; the 3 images scored before are in {partial}"):
        batch.score("s3://slides/batch-8/", output, predictor, batch_size=2)
    assert [row["image"] for row in csv.DictReader(partial.open())] == [p.name for p in images]
    assert output.read_text() == "an earlier run's CSV\n"  # not replaced by half a file


def test_batch_scoring_refuses_an_unwritable_output_before_scoring(
    model_store: Path, small_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a file").write_text("")
    message = batch_main(small_root, tmp_path / "a file" / "scores.csv", model_store)
    assert message == f"error: cannot write {tmp_path / 'a file' / 'scores.csv'} ({tmp_path / 'a file'} is a file)"
    assert "scoring:" not in capsys.readouterr().err  # no progress bar: refused before the first image


@pytest.mark.parametrize("file", ["model.onnx", "model.int8.onnx"])
def test_a_probability_is_a_function_of_the_image_alone(model_store: Path, file: str) -> None:
    """Dynamic quantization sets its activation scales per run, from every image in it: served in a batch
    of 16, the int8 model's answer for an image moved by up to 0.0055 (320 demo images)."""
    predictor = Predictor.load(model_store / MODEL / file, limits=Limits(max_batch=16))
    images = [sample_png(seed, 224) for seed in range(16)]
    alone = np.array([predictor.probabilities([image])[0] for image in images])
    together = predictor.probabilities(images)
    in_pairs = np.concatenate([predictor.probabilities(images[i : i + 2]) for i in range(0, 16, 2)])
    assert np.max(np.abs(together - alone)) <= 1e-6
    assert np.max(np.abs(in_pairs - alone)) <= 1e-6


def test_the_resize_uses_the_interpolation_the_model_was_trained_with(model_store: Path, tmp_path: Path) -> None:
    from inference.preprocessing import decode, to_input

    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    path = store / MODEL / "model.onnx"
    image = decode(sample_png(seed=3, size=300))
    bilinear = Predictor.load(path)
    assert bilinear.interpolation == "bilinear"
    write_metadata(path, {**read_metadata(path), "interpolation": "bicubic"})
    bicubic = Predictor.load(path)
    mean, std = bicubic.normalization
    expected = to_input(image, bicubic.input_size, mean, std, "bicubic")
    np.testing.assert_array_equal(bicubic.inputs([image])[0], expected)
    assert np.abs(bilinear.inputs([image])[0] - expected).max() > 0.01


def test_the_colour_screen_names_what_is_not_tissue(small_root: Path) -> None:
    """Its thresholds on a flat field, a greyscale photograph, half a slide, and the demo's patches."""
    import skimage.data
    from PIL import Image

    from inference.screening import tissue_problem

    grey = Image.fromarray(skimage.data.camera()).convert("RGB")
    half = np.full((224, 224, 3), 245, np.uint8)
    half[:, :112] = (180, 90, 160)  # eosin-pink on one half, bare glass on the other
    assert tissue_problem(Image.new("RGB", (224, 224), (248, 248, 248))).startswith("the image is nearly uniform")
    assert tissue_problem(grey).startswith("only 0% of the image is stained like tissue")
    assert tissue_problem(Image.fromarray(half)) is None  # 50% stained: above the 20% asked for
    half[:, 40:] = 245
    assert tissue_problem(Image.fromarray(half)).startswith("only 18% of the image")
    patches = sorted((small_root / "images").iterdir())[:8]
    assert [tissue_problem(Image.open(path).convert("RGB")) for path in patches] == [None] * 8


def test_every_answer_says_whether_the_image_is_like_the_training_images(model_store: Path, small_root: Path) -> None:
    """A synthetic landscape got "SSA 0.937" with nothing to say it was no slide at all."""
    import io

    import skimage.data
    from PIL import Image

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG")
        return buffer.getvalue()

    predictor = Predictor.load(resolve_model_path(model_store, MODEL, "fp32"))
    assert predictor.ood_cutoff is not None
    tissue = [p.read_bytes() for p in sorted((small_root / "images").iterdir())[:16]]
    answers = predictor.predict(tissue)
    assert sum(a["in_distribution"] for a in answers) >= 12  # a 95% cut-off, from this tiny fit's 12 validation images
    assert all(a["ood_reason"] is None for a in answers if a["in_distribution"])
    photo, blank, stain = predictor.predict(
        [
            png(skimage.data.astronaut()),
            png(np.full((224, 224, 3), 248, np.uint8)),
            png(skimage.data.immunohistochemistry()),
        ]
    )
    assert (photo["in_distribution"], blank["in_distribution"], stain["in_distribution"]) == (False, False, False)
    assert photo["ood_score"] > 1
    assert photo["ood_reason"].startswith("unlike the training images")
    assert blank["ood_reason"] == "the image is nearly uniform (a blank field?)"
    card = predictor.card()["card"]
    assert card["intended_use"].startswith("Research use only")
    assert card["out_of_distribution"]["cutoff"] == pytest.approx(predictor.ood_cutoff, rel=1e-5)


def test_a_model_exported_without_a_guard_still_answers(model_store: Path, tmp_path: Path) -> None:
    """Files exported before the guard have one output: the colour checks still run, the score is null."""
    import onnx

    store = Path(shutil.copytree(model_store, tmp_path / "models"))
    path = store / MODEL / "model.onnx"
    model = onnx.load(str(path))
    kept = [o for o in model.graph.output if o.name == "probability"]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    onnx.save(model, str(path))
    predictor = Predictor.load(path)
    (answer,) = predictor.predict([sample_png(seed=1)])
    assert predictor.ood_cutoff is None
    assert answer["ood_score"] is None
    assert isinstance(answer["in_distribution"], bool)
