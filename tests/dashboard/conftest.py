import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_torch_thread):
    """Page and job tests run many tiny ops: one torch thread (tests/conftest.py), as the server runs its pages
    (dashboard/ui/warmup.py) and a job worker its training. A second intra-op thread gains nothing on them and,
    while any other process is busy, each op waits for it: several times the wall and CPU time under load."""
    yield
