"""Fixtures shared by every test folder."""

import os

import pytest
import torch


def pytest_configure(config):
    """The suite runs on two pytest-xdist workers, one per core (pyproject.toml's addopts): each worker uses one
    torch thread, so the two never share a core between four threads (a spinning OpenMP thread waits for a busy
    core: several times the wall time)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for the module (as in a job worker): on a 2-core CPU, tiny ops gain nothing from
    a second thread, which only adds waiting when other processes are busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
