"""Shared test fixtures. The official parity fixture lives in ../shared beside the repository.
Without it the tests that need it are skipped, with the reason printed, so that a fresh clone
passes; in CI (the ``CI`` variable set, as ``.ci/run`` runs) a missing fixture is a failure."""

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
FIXTURE_DIR = FIXTURES / "official_usr2"
CROPS_DIR = FIXTURES / "official_crops"


def require_fixture(directory: Path = FIXTURE_DIR, marker: str = "tiny_model.pth") -> Path:
    """``directory`` if it holds ``marker``; else skip the test, or fail it in CI."""
    if (directory / marker).is_file():
        return directory
    message = f"official fixture {marker} not found in {directory} (the ../shared folder)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI needs it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def official_dir() -> Path:
    return require_fixture()


@pytest.fixture(autouse=True)
def _same_torch_state_for_every_test():
    """Each test starts from torch's global seed 0 and the session's thread count, and whatever
    it changes (training sets its own thread count) is put back: a test's outcome does not
    depend on which tests ran before it. (pytest-randomly shuffles the order and reseeds
    ``random`` and numpy the same way.)"""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture(autouse=True)
def _face_model_never_downloads(monkeypatch, tmp_path_factory):
    """The cached face model is the fixture's copy (absent without ../shared) and its download
    URL a local file that does not exist: no test reaches the network."""
    model = CROPS_DIR / "face_landmarker.task"
    cache = model if model.is_file() else tmp_path_factory.getbasetemp() / "no_face_model.task"
    monkeypatch.setenv("UNISR_FACE_MODEL", str(cache))
    monkeypatch.setenv("UNISR_FACE_MODEL_URL", (CROPS_DIR / "not_published.task").as_uri())


@pytest.fixture(scope="session")
def crops_dir() -> Path:
    """The official mouth crops of two real-face videos and MediaPipe's face model file."""
    return require_fixture(CROPS_DIR, "face_landmarker.task")


@pytest.fixture(scope="session")
def face_model(crops_dir) -> Path:
    return crops_dir / "face_landmarker.task"


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


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The test order's seed, at the end where ``-q`` still shows it: a failure that depends on
    the order can be replayed."""
    seed = config.getoption("randomly_seed", default=None)
    if seed is not None:
        terminalreporter.write_line(f"test order: --randomly-seed={seed} replays it")
