"""Shared fixtures for the analysis tests: small simulated datasets (seeded)."""
from __future__ import annotations

import pytest

from analysis import simulate


@pytest.fixture(scope="session")
def small():
    """Nine IMI models, 20 units each, natural + synthetic, 10 responses per unit."""
    return simulate(units_per_model=20, responses_per_unit=10, careless_fraction=0.1, seed=3)


@pytest.fixture(scope="session")
def small_folder(small, tmp_path_factory):
    """`small` written as an interpsy export folder (parquet)."""
    return small.save(tmp_path_factory.mktemp("export"))
