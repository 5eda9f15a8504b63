"""What a clean clone gets, the checkout itself and its Makefile, not the code in it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    listing = git("ls-files", "-s")
    if listing.returncode != 0:
        pytest.skip(f"not a git checkout: {listing.stderr.strip()}")
    return listing.stdout.splitlines()


def test_no_symlink_is_tracked(tracked: list[str]) -> None:
    """A link to a path on one machine dangles on every other (demo_data -> /tmp/demo2 once did)."""
    assert [line.split("\t", 1)[1] for line in tracked if line.startswith("120000 ")] == []


@pytest.mark.parametrize(
    "path", ["demo_data", "outputs", "mlruns", "bench/results", ".venv", ".venv-checkov", "cdk.out", "node_modules"]
)
def test_what_the_project_generates_is_ignored_whatever_its_kind(tracked: list[str], path: str) -> None:
    assert git("check-ignore", "--no-index", "-q", path).returncode == 0, f"{path} is not ignored"


def test_make_clean_keeps_the_training_results(tmp_path: Path) -> None:
    made = [
        "demo_data/images/demo_00000.png",
        "outputs/bench/models/mlp/model.onnx",
        "outputs/models/mlp/model.onnx",
        "bench/results/inference.json",
        "cdk.out/MhistStack.template.json",
    ]
    kept = ["outputs/mlflow.db", "outputs/1/0a1b/checkpoints/last.ckpt", "outputs/mlartifacts/1/0a1b/artifacts/x"]
    for name in made + kept:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    subprocess.run(["make", "-f", str(REPO / "Makefile"), "clean"], cwd=tmp_path, check=True, capture_output=True)
    assert [name for name in made if (tmp_path / name).exists()] == []
    assert [name for name in kept if not (tmp_path / name).exists()] == []


@pytest.mark.parametrize("store", [True, False])
def test_make_bench_logs_the_report_to_mlflow_only_where_a_store_exists(tmp_path: Path, store: bool) -> None:
    shutil.copytree(REPO / "requirements", tmp_path / "requirements")
    shutil.copy(REPO / "package-lock.json", tmp_path)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / ".installed").touch()  # newer than its prerequisites: make -n plans no install
    if store:
        (tmp_path / "outputs").mkdir()
        (tmp_path / "outputs" / "mlflow.db").touch()
    planned = subprocess.run(
        ["make", "-n", "--no-print-directory", "-f", str(REPO / "Makefile"), "bench"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (report,) = [line for line in planned.splitlines() if " -m bench.report " in line]  # also under `make test`
    assert report.startswith(".venv/bin/python -m bench.report --tracking-uri sqlite:///")
    assert report.endswith("--no-mlflow") != store
