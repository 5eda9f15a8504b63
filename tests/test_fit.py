"""``training/fit.py`` end to end on the demo data, on CPU, into a local MLflow store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.conftest import REPO
from training.export import main as export_main
from training.fit import main
from training.onnx_export import read_metadata

pytestmark = pytest.mark.slow


def fit(config: str, data: Path, root: Path, *extra: str):
    args = ["--config", config, "--data.root", str(data), "--trainer.default_root_dir", str(root)]
    return main([*args, "--data.num_workers", "0", "--trainer.enable_progress_bar", "false", *extra])


def client_for(root: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{root.resolve()}/mlflow.db")


@pytest.fixture(scope="module")
def demo_runs(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The two demo fits, into one store, as the README's demo command runs them; the ViT for 3 of its 6
    epochs (both fine-tuning phases, in two thirds of the time)."""
    root = tmp_path_factory.mktemp("outputs")
    runs = [fit("demo.yaml", demo_root, root, "--trainer.max_epochs", "3").logger.run_id]
    runs.append(fit("demo-mlp.yaml", demo_root, root, "--register", "mhist-mlp").logger.run_id)
    return root, runs


@pytest.mark.parametrize(("index", "model_name"), [(0, "vit_tiny_patch16_224"), (1, "mlp-64-32")])
def test_demo_fit_beats_chance_and_is_tracked(demo_runs, index: int, model_name: str) -> None:
    root, runs = demo_runs
    run = client_for(root).get_run(runs[index])
    metrics, params = run.data.metrics, run.data.params
    assert run.info.status == "FINISHED"
    assert metrics["test/auroc"] > 0.8
    for name in ("test/sensitivity", "test_tuned/sensitivity", "test/specificity", "test/mcc", "val/guarded_score"):
        assert name in metrics
    assert 0 < metrics["test_tuned/threshold"] < 1
    assert run.data.tags["model_name"] == model_name
    assert run.data.tags["data.images"] == "480"
    assert len(run.data.tags["data.annotations_sha256"]) == 64
    assert len(run.data.tags["git_commit"].removesuffix("-dirty")) == 40
    assert params["model.optimizer.class_path"] == "torch.optim.AdamW"
    assert "model.optimizer.init_args.lr" in params
    assert "finetuning.unfreeze_at_epoch" in params
    assert re.fullmatch(rf"{model_name}-\d{{8}}-\d{{6}}", run.info.run_name)
    (dataset,) = run.inputs.dataset_inputs
    assert dataset.dataset.digest == run.data.tags["data.annotations_sha256"][:36]
    assert sum(sum(counts.values()) for counts in json.loads(dataset.dataset.profile).values()) == 480
    experiment = client_for(root).get_experiment(run.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.parametrize("index", [0, 1])
def test_demo_run_carries_onnx_files_card_and_plots(demo_runs, index: int) -> None:
    root, runs = demo_runs
    client, run_id = client_for(root), runs[index]
    listed = {a.path for folder in ("model", "plots") for a in client.list_artifacts(run_id, folder)}
    assert {"model/model.onnx", "model/model.int8.onnx", "model/card.json"} <= listed
    assert {
        "plots/curves.png",
        "plots/confusion_test.png",
        "plots/augmented_train.png",
        "plots/lr_schedule.png",
        "plots/reliability.png",
        "plots/heatmaps_test.png",
    } <= listed
    local = Path(client.download_artifacts(run_id, "model", str(root / f"dl-{run_id}")))
    card = json.loads((local / "card.json").read_text())
    metadata = read_metadata(local / "model.onnx")
    run = client.get_run(run_id)
    metrics = run.data.metrics
    assert metadata["mlflow_run_id"] == card["mlflow_run_id"] == run_id
    assert float(metadata["threshold"]) == pytest.approx(metrics["export/threshold"], abs=1e-6)
    # The temperature is in the graph and the threshold re-tuned on its output: the same labels as
    # the PyTorch test at the uncalibrated threshold, a different number.
    in_graph = json.loads(metadata["calibration"])
    assert in_graph == {k: card["calibration"][k] for k in ("temperature", "bias")}
    assert in_graph["temperature"] == pytest.approx(metrics["calibration/temperature"])
    assert card["metrics"]["test"]["sensitivity"] == pytest.approx(metrics["test_tuned/sensitivity"], abs=1e-6)
    assert card["metrics"]["test"]["specificity"] == pytest.approx(metrics["test_tuned/specificity"], abs=1e-6)
    loss = card["calibration"]["log_loss"]["validation"]
    assert loss["after"] <= loss["before"] + 1e-6  # minimized there from (T, b) = (1, 0), so never worse
    assert metrics["calibration/test_ece_after"] == pytest.approx(card["calibration"]["ece"]["test"]["after"])
    low, high = card["intervals_95"]["test"]["auroc"]
    assert low <= card["metrics"]["test"]["auroc"] <= high
    strata = card["test_by_agreement"]
    assert (
        sum(s["images"] for s in strata.values())
        == card["data"]["splits"]["test"]["HP"] + card["data"]["splits"]["test"]["SSA"]
    )
    assert metrics["test_agreement/4_of_7/images"] == strata["4_of_7"]["images"]
    assert card["intended_use"].startswith("Research use only, not for clinical diagnosis")
    assert card["data"]["description"].startswith("synthetic demo images")
    assert metadata["interpolation"] == ("bicubic", "bilinear")[index]  # timm's pretrained config; the MLP's default
    assert card["parity"]["max_abs_diff"] <= 1e-4
    int8 = read_metadata(local / "model.int8.onnx")
    assert int8["servable"] == ("true" if card["int8"]["servable"] else "false")
    assert run.data.metrics["int8/servable"] == float(card["int8"]["servable"])
    assert Path(run.data.tags["best_checkpoint"]).is_file()
    # The OOD guard, measured through serving's Predictor on the exported file
    guard = card["out_of_distribution"]
    assert float(metadata["ood_cutoff"]) == pytest.approx(guard["cutoff"], rel=1e-5)
    assert float(int8["ood_cutoff"]) > 0  # its own cut-off, on its own scores
    assert guard["test_false_alarm_rate"] <= 0.15  # set at 5% on validation
    assert guard["detection_rate"] >= 0.9  # photographs, greyscale, graphics, another stain, blank fields
    assert guard["demo_generator_images_flagged"] <= 0.25  # the demo models learned these: false alarms here
    assert metrics["ood/test_false_alarm_rate"] == pytest.approx(guard["test_false_alarm_rate"])
    assert json.loads(metadata["card"])["out_of_distribution"]["detection_rate"] == guard["detection_rate"]


def test_publish_installs_the_newest_run_of_a_model_and_names_what_there_is(demo_runs, tmp_path: Path) -> None:
    from inference.publish import main as publish

    root, runs = demo_runs
    store = f"sqlite:///{root.resolve()}/mlflow.db"
    target = publish(["--latest", "mlp-64-32", "--to", str(tmp_path / "models"), "--tracking-uri", store])
    assert target == tmp_path / "models" / "mlp-64-32"
    assert json.loads((target / "card.json").read_text())["mlflow_run_id"] == runs[1]
    assert read_metadata(target / "model.onnx")["mlflow_run_id"] == runs[1]
    models = "(its models: mlp-64-32, vit_tiny_patch16_224)"
    for args, message in [
        (["--latest", "vit_tiny"], f"no finished run of vit_tiny in experiment 'mhist' {models}"),
        (
            ["--latest", "mlp-64-32", "--experiment", "mhsit"],
            f"no experiment 'mhsit' at {store} (there: Default, mhist)",
        ),
        (["--run-id", "feedc0de"], f"no MLflow run feedc0de at {store}"),
    ]:
        with pytest.raises(SystemExit, match=re.escape(f"error: {message}")):
            publish([*args, "--to", str(tmp_path / "other"), "--tracking-uri", store])
    assert not (tmp_path / "other").exists()


def test_registering_is_a_flag(demo_runs) -> None:
    root, runs = demo_runs
    client = client_for(root)
    (version,) = client.search_model_versions("name='mhist-mlp'")
    assert version.run_id == runs[1]
    assert version.source.endswith(f"{runs[1]}/artifacts/model")
    assert client.search_model_versions(f"run_id='{runs[0]}'") == []


def test_second_run_does_not_collide_with_the_first(demo_runs) -> None:
    root, runs = demo_runs
    client = client_for(root)
    experiment = client.get_experiment_by_name("mhist")
    assert {r.info.run_id for r in client.search_runs([experiment.experiment_id])} == set(runs)
    configs = [client.download_artifacts(run, "config/config.yaml", str(root / run)) for run in runs]
    assert "TimmClassifier" in Path(configs[0]).read_text()
    assert "MlpClassifier" in Path(configs[1]).read_text()


def test_per_epoch_metrics_and_learning_rate_are_logged(demo_runs) -> None:
    root, runs = demo_runs
    client = client_for(root)
    history = client.get_metric_history(runs[0], "val/auroc")
    assert len(history) >= 2
    learning_rates = sorted(key for key in client.get_run(runs[0]).data.metrics if key.startswith("lr-"))
    assert learning_rates == ["lr-AdamW/backbone", "lr-AdamW/head"]  # the parameter groups by name
    assert len(client.get_metric_history(runs[0], learning_rates[0])) >= 2


def test_resume_continues_the_same_mlflow_run(
    small_root: Path, tmp_path: Path, recwarn: pytest.WarningsRecorder, capsys: pytest.CaptureFixture[str]
) -> None:
    first = fit("demo-mlp.yaml", small_root, tmp_path, "--trainer.max_epochs", "2")
    run_id = first.logger.run_id
    printed = capsys.readouterr().out  # the run says where its ONNX files are, and which one serves
    export = Path(first.checkpoint_callback.best_model_path).parent.parent / "export" / "model"
    assert f"ONNX files: {export}/ (model.int8.onnx, model.onnx, card.json)" in printed
    assert f"MLflow run {run_id} (experiment 'mhist') at sqlite:///{tmp_path.resolve()}/mlflow.db" in printed
    assert re.search(
        r"int8 (passed its gate: it is the one served|failed its gate: model.onnx is served) \(AUROC drop", printed
    )
    second = fit("demo-mlp.yaml", small_root, tmp_path, "--trainer.max_epochs", "4", "--resume", run_id)
    assert not [w for w in recwarn if "exists and is not empty" in str(w.message)]  # it is the run's own folder
    assert second.logger.run_id == run_id
    assert second.current_epoch == 4
    client = client_for(tmp_path)
    # One validation per epoch, none repeated: the resumed fit started at epoch 2, not over.
    assert [m.step for m in client.get_metric_history(run_id, "val/loss")] == [0, 1, 2, 3]
    experiment = client.get_experiment_by_name("mhist")
    assert len(client.search_runs([experiment.experiment_id])) == 1
    # Resuming a run that trained all its epochs only tested and exported it again, over its results.
    tested = client.get_metric_history(run_id, "test/auroc")  # one per fit: the first, and the resumed one
    with pytest.raises(SystemExit, match=f"--resume {run_id}: the run finished all 4 epochs of trainer.max_epochs; "):
        fit("demo-mlp.yaml", small_root, tmp_path, "--trainer.max_epochs", "4", "--resume", run_id)
    assert client.get_metric_history(run_id, "test/auroc") == tested


def run_fit_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "training/fit.py", *args], cwd=REPO, capture_output=True, text=True, timeout=600
    )


def run_export_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "training/export.py", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_ddp_on_cpu_with_two_processes(small_root: Path, tmp_path: Path) -> None:
    result = run_fit_script(
        "--config",
        "demo-mlp.yaml",
        "--data.root",
        str(small_root),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp",
        "--trainer.max_epochs",
        "2",
        "--data.batch_size",
        "8",
        "--data.num_workers",
        "0",
        "--trainer.enable_progress_bar",
        "false",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    assert "LeafSpec" not in result.stderr  # torch's notice about pinned Lightning code, hidden in every rank
    assert "litlogger" not in result.stdout + result.stderr  # nor Lightning's advertisement for its cloud logger
    client = client_for(tmp_path)
    (run,) = client.search_runs([client.get_experiment_by_name("mhist").experiment_id])
    assert "test/auroc" in run.data.metrics


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data.root", "/no/such/mhist"], "error: data.root: MHIST folder /no/such/mhist does not exist"),
        (["--resume", "0123456789abcdef"], "error: --resume: no MLflow run 0123456789abcdef"),
        (["--config", "demo-mpl.yaml"], "error: config demo-mpl.yaml is neither a file nor one of"),
        (["--trainer.max_epochs", "0"], "error: trainer.max_epochs must be at least 1, or -1 for no limit, got 0"),
        # the constructors' bounds are their argument types: LightningCLI refuses a value by its key
        (["--model.optimizer.init_args.lr", "-1"], "error: model.optimizer: Invalid learning rate: -1.0"),
        (
            ["--model.optimizer", "torch.optim.Adm"],
            "error: model.optimizer: module 'torch.optim' has no attribute 'Adm'",
        ),
        (["--model.target_sensitivity", "1.5"], "error: model.target_sensitivity: Input should be less than or equal"),
        (["--model.pos_weight", "0"], "error: model.pos_weight: "),
        (["--data.batch_size", "0"], "error: data.batch_size: Input should be greater than 0, got '0'"),
        (["--data.val_fraction", "1"], "error: data.val_fraction: Input should be less than 1, got '1'"),
        (["--model.net.init_args.dropout", "1.5"], "error: model.net.dropout: Input should be less than 1, got '1.5'"),
        (["--model.net.init_args.hidden_sizes", "[4, 0]"], "error: model.net.hidden_sizes: Input should be greater"),
        (["--finetuning.unfreeze_lr", "0"], "error: finetuning.unfreeze_lr: Input should be greater than 0, got '0'"),
        (["--trainer.logger", "false"], "error: trainer.logger is false: fit.py logs each run"),
        (["--model.lrr", "5"], "error: unrecognized arguments: --model.lrr 5"),  # after ~100 lines of usage before
        (
            ["--trainer.strategy", "ddp_nonsense"],
            "error: trainer: You selected an invalid strategy name: `strategy='ddp_nonsense'`",
        ),
        pytest.param(
            ["--trainer.accelerator", "gpu"],
            "error: trainer.accelerator gpu: ",  # "No supported gpu backend"
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: gpu is valid here"),
        ),
    ],
)
def test_user_errors_are_one_line_not_a_traceback(
    small_root: Path, tmp_path: Path, args: list, message: str, capsys: pytest.CaptureFixture
) -> None:
    """In-process: ``main`` exits with the one line; nothing else reaches stderr (no usage, no traceback)."""
    base = ["--config", "demo-mlp.yaml", "--data.root", str(small_root), "--trainer.default_root_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        main([*base, *args])
    assert message in str(exited.value.code)
    assert "\n" not in str(exited.value.code)
    printed = capsys.readouterr().err
    assert "Traceback" not in printed
    assert "usage:" not in printed


def test_the_script_prints_a_user_error_as_one_line(small_root: Path, tmp_path: Path) -> None:
    """The real entry point, once: the message reaches the terminal, alone."""
    result = run_fit_script(
        "--config",
        "demo-mlp.yaml",
        "--data.root",
        str(small_root),
        "--model.lrr",
        "5",
        "--trainer.default_root_dir",
        str(tmp_path),
    )
    assert result.returncode == 1
    assert "error: unrecognized arguments: --model.lrr 5" in result.stderr
    assert "Traceback" not in result.stderr
    assert "usage:" not in result.stderr


def test_export_command_reexports_a_run_and_a_checkpoint(demo_runs, tmp_path: Path) -> None:
    root, runs = demo_runs
    store = f"sqlite:///{root.resolve()}/mlflow.db"
    card = export_main(["--run-id", runs[1], "--tracking-uri", store, "--out", str(tmp_path / "again")])
    assert card["mlflow_run_id"] == runs[1]
    assert (tmp_path / "again" / "model" / "model.int8.onnx").is_file()
    assert read_metadata(tmp_path / "again" / "model" / "model.onnx")["model_name"] == "mlp-64-32"
    checkpoint = client_for(root).get_run(runs[1]).data.tags["best_checkpoint"]
    card = export_main(["--checkpoint", checkpoint, "--out", str(tmp_path / "ckpt"), "--tracking-uri", store])
    assert card["threshold"] == pytest.approx(client_for(root).get_run(runs[1]).data.metrics["export/threshold"])
    (tmp_path / "a file").write_text("")  # an --out that cannot be made: said before the export's work
    with pytest.raises(
        SystemExit,
        match=re.escape(
            f"error: --out {tmp_path / 'a file' / 'out'}: cannot write there ({tmp_path / 'a file'} is a file)"
        ),
    ):
        export_main(["--checkpoint", checkpoint, "--out", str(tmp_path / "a file" / "out"), "--tracking-uri", store])


def test_export_command_names_an_unknown_run_and_an_unreadable_store(tmp_path: Path) -> None:
    store = tmp_path / "x.db"
    MlflowClient(f"sqlite:///{store}").search_experiments()  # an empty store
    missing = tmp_path / "typo.db"
    result = run_export_script("--run-id", "feedc0de", "--tracking-uri", f"sqlite:///{store}")  # the real script, once
    assert result.returncode == 1
    assert "error: no MLflow run feedc0de" in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(SystemExit, match=f"there is no MLflow store at {missing}"):
        export_main(["--run-id", "feedc0de", "--tracking-uri", f"sqlite:///{missing}"])
    assert not missing.exists()  # MLflow would have made an empty store there


def test_export_of_a_fit_that_did_not_finish_says_to_resume_it(tmp_path: Path) -> None:
    """It said 'has no best_checkpoint tag (was it trained by training/fit.py?)' of a run fit.py started."""
    from training.errors import TrainingSetupError
    from training.export import checkpoint_of

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.create_experiment("mhist", artifact_location=str(tmp_path / "artifacts"))
    stopped = client.create_run(experiment, tags={"model_name": "mlp-64-32"}).info.run_id
    client.set_terminated(stopped, "KILLED")
    with pytest.raises(TrainingSetupError, match=rf"run {stopped} did not finish \(KILLED\): .* --resume {stopped}$"):
        checkpoint_of(client, stopped)
    other = client.create_run(experiment).info.run_id  # not a fit at all
    with pytest.raises(TrainingSetupError, match="has no best_checkpoint tag"):
        checkpoint_of(client, other)


def test_a_tracking_server_that_does_not_answer_is_one_line_at_once(
    small_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.servers import free_port

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: MLflow alone retried it for minutes, then a traceback
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    with pytest.raises(SystemExit) as exited:
        main(["--config", "demo-mlp.yaml", "--data.root", str(small_root), "--trainer.default_root_dir", str(tmp_path)])
    assert f"error: the MLflow tracking server at {url} does not answer" in str(exited.value.code)
    assert "unset MLFLOW_TRACKING_URI to log into the local store" in str(exited.value.code)


def test_export_command_refuses_a_file_fit_did_not_write(tmp_path: Path) -> None:
    import torch

    (tmp_path / "bytes.ckpt").write_bytes(b"not a checkpoint")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")  # a torch file, but not Lightning's
    for name, reason in [
        ("bytes.ckpt", "(UnpicklingError)"),
        ("other.ckpt", "(KeyError: 'pytorch-lightning_version')"),
    ]:
        with pytest.raises(SystemExit) as exited:
            export_main(["--checkpoint", str(tmp_path / name), "--out", str(tmp_path / "out")])
        expected = f"error: {tmp_path / name} is not a checkpoint written by training/fit.py {reason}"
        assert str(exited.value.code) == expected
    assert not (tmp_path / "out").exists()


def test_a_second_fit_in_the_same_process_uses_its_own_store(small_root: Path, tmp_path: Path) -> None:
    import os

    first = fit("demo-mlp.yaml", small_root, tmp_path / "a", "--trainer.max_epochs", "1")
    assert "MLFLOW_TRACKING_URI" not in os.environ  # MLflow sets it; main() puts it back
    second = fit("demo-mlp.yaml", small_root, tmp_path / "b", "--trainer.max_epochs", "1")
    assert client_for(tmp_path / "a").get_run(first.logger.run_id)
    assert client_for(tmp_path / "b").get_run(second.logger.run_id)
