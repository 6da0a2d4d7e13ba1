"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The SuperGLUE jsonl folder: $DP_BENCH_DATA, else ../shared/superglue beside the repo."""
    path = Path(os.environ.get("DP_BENCH_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "superglue")
    if not path.is_dir():
        pytest.skip(f"SuperGLUE data not found at {path} (set DP_BENCH_DATA)")
    return path.resolve()
