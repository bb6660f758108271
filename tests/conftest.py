"""Shared fixtures: reference data, hypothesis profiles, a guard against leaked global state."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

DATA = Path(__file__).parent / "data"

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile("dev", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("intense", max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def load_reference(name: str) -> dict[str, np.ndarray]:
    """All arrays of one reference file in tests/data (see tests/data/REFERENCE.md)."""
    with np.load(DATA / name, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture
def rng() -> np.random.Generator:
    """One seeded generator per test."""
    return np.random.default_rng(20171107)


@pytest.fixture(autouse=True)
def _keras_state_unchanged():
    """Fail a test that changes Keras's float type or backend behind everyone's back."""
    floatx, backend = keras.config.floatx(), keras.backend.backend()
    yield
    assert keras.config.floatx() == floatx, "a test changed keras floatx"
    assert keras.backend.backend() == backend, "a test changed the keras backend"
