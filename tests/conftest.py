"""Fixtures shared by the test modules that drive the whole app over HTTP."""

import pytest
from gradio_client import Client

from explorer.ui import build_demo
from served_app import launch


@pytest.fixture(scope="module")
def app():
    """The whole app, launched once per test module on a free loopback port."""
    demo = launch(build_demo())
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    return Client(app.local_url, verbose=False)
