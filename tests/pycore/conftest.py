"""pytest side of the shared core tests: `out_dir` fixture and CASES parametrisation."""

from __future__ import annotations

import pytest


@pytest.fixture
def out_dir(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "check_case" and "case" in metafunc.fixturenames:
        cases = metafunc.module.CASES
        metafunc.parametrize("case", cases, ids=[c.id for c in cases])
