"""What a clean clone gets: the checkout itself, not the code in it."""

from __future__ import annotations

import subprocess

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
    "path", ["demo_data", "outputs", "mlruns", "bench/results", ".venv", "cdk.out", "node_modules"]
)
def test_what_the_project_generates_is_ignored_whatever_its_kind(tracked: list[str], path: str) -> None:
    assert git("check-ignore", "--no-index", "-q", path).returncode == 0, f"{path} is not ignored"
