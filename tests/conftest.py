"""Fixtures shared by the test modules that drive the whole app over HTTP."""

import pytest
from gradio_client import Client

from explorer.ui import build_demo
from served_app import launch

# Test files whose tests are independent enough to run on any xdist worker (each worker has its own app);
# every other file runs whole on one worker, so its module fixtures (a trained model, a browser) are built once.
SPREAD_FILES = {"test_hostile_api.py"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name not in SPREAD_FILES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@pytest.fixture(scope="session")
def app():
    """The whole app, launched once per test session (per xdist worker) on a free loopback port.

    Shared by the modules that only call it: none of them changes what another one sees."""
    demo = launch(build_demo())
    yield demo
    demo.close()


@pytest.fixture(scope="session")
def client(app):
    return Client(app.local_url, verbose=False)
