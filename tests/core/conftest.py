import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Engine tests run many tiny ops; on a 2-core CPU a second intra-op thread only adds waiting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
