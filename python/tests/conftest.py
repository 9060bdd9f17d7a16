"""Shared fixtures. The tests import the installed package `kvik` (scripts/test.sh installs it
into a virtual environment with `pip install .`), or the build tree's copy when PYTHONPATH
points there.

tests/fake_device/ runs only in a child pytest that test_fake_device.py starts with the fake
libcuda.so.1 (tests/fake) first in LD_LIBRARY_PATH: the driver is loaded once per process, so
those tests cannot share a process with the host-only ones."""

import os

import pytest

collect_ignore = [] if os.environ.get("KVIK_FAKE_CUDA_ACTIVE") == "1" else ["fake_device"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    # The tests' results must not depend on the caller's KVIKIO_* settings.
    for k in list(os.environ):
        if k.startswith("KVIKIO_"):
            monkeypatch.delenv(k)


@pytest.fixture
def data():
    """Deterministic random bytes (no repeating period that could hide an offset error)."""
    import numpy as np

    def make(n, seed=1):
        return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()

    return make
