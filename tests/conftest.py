"""Shared fixtures. Real-data tests use ``shared_datasets`` and skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# One intra-op thread: the tests use tiny tensors, where a thread pool only adds
# synchronisation (several times slower on a loaded 2-core machine).
torch.set_num_threads(1)

SHARED = Path(
    os.environ.get(
        "BRAINTUMOR_SHARED_DATASETS",
        Path(__file__).resolve().parents[1].parent / "shared" / "datasets",
    )
)


@pytest.fixture(autouse=True)
def _isolated_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Keep the preprocessing cache out of the user's home during tests.
    monkeypatch.setenv("BRAINTUMOR_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
    # Tests compare predictions with eager fp32 to ~1e-6: they run eager unless they ask
    # for a backend (tests/inference/test_fast_path.py covers the default, auto).
    monkeypatch.setenv("BRAINTUMOR_BACKEND", "eager")


@pytest.fixture
def shared_datasets() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"real data sets not found at {SHARED} (set BRAINTUMOR_SHARED_DATASETS)")
    return SHARED


def shared_subdir(name: str) -> Path:
    """Path of one real data set, skipping the test when it is absent."""
    p = SHARED / name
    if not p.exists():
        pytest.skip(f"real data set {name!r} not found at {p}")
    return p
