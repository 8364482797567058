"""Fixtures shared by every test folder."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for the module (as in a job worker): on a 2-core CPU, tiny ops gain nothing from
    a second thread, which only adds waiting when other processes are busy."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
