import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Engine tests run many tiny ops: one torch thread (tests/conftest.py)."""
    yield
