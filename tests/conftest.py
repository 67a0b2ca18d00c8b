"""Shared test fixtures. The official parity fixture lives in ../shared beside the repository;
a missing fixture is an error, never a skip."""

from pathlib import Path

import pytest
import torch

FIXTURE_DIR = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official_usr2"


@pytest.fixture(scope="session")
def official_dir() -> Path:
    if not (FIXTURE_DIR / "tiny_model.pth").is_file():
        pytest.fail(f"official parity fixture not found at {FIXTURE_DIR}")
    return FIXTURE_DIR


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
