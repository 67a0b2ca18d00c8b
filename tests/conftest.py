"""Shared test fixtures. The official parity fixture lives in ../shared beside the repository.
Without it the tests that need it are skipped, with the reason printed, so that a fresh clone
passes; in CI (the ``CI`` variable set, as ``.ci/run`` runs) a missing fixture is a failure."""

import os
from pathlib import Path

import pytest
import torch

FIXTURE_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official_usr2"


def require_fixture(directory: Path = FIXTURE_DIR) -> Path:
    """``directory`` if it holds the official fixture; else skip the test, or fail it in CI."""
    if (directory / "tiny_model.pth").is_file():
        return directory
    message = f"official parity fixture not found at {directory} (the ../shared folder)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI needs it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return require_fixture()


@pytest.fixture(scope="session")
def official_model(official_dir):
    """The fixture's tiny official checkpoint loaded through the official-format path."""
    import unisr

    return unisr.load_model(
        official_dir / "tiny_model.pth", units=official_dir / "unigram1000_units.txt"
    )


@pytest.fixture(scope="session")
def official_inputs(official_dir) -> dict:
    return torch.load(official_dir / "inputs.pt")


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """The script ``benchmarks/<name>.py`` as a module (with its sibling ``report`` importable)."""
    import importlib.util
    import sys

    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def fitted(tmp_path_factory):
    """A tiny model trained for seconds, with held-out clips (``fitted.py``)."""
    from fitted import fitted_model

    return fitted_model(tmp_path_factory.mktemp("fitted"))
