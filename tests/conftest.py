"""Fixtures shared by the test modules that drive the whole app over HTTP."""

import os
import sys
import tempfile

# Each xdist worker gets its own Gradio temp folder, set before Gradio is imported (it reads the variable at
# import). Gradio names an uploaded file's folder by the file's content, so two workers uploading the same test
# image would otherwise share one path, and a test that deletes its app's old temp files would delete the other
# worker's upload from under it.
assert "gradio" not in sys.modules, "conftest must set GRADIO_TEMP_DIR before Gradio is imported"
os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix=f"ddpm-tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")

import functools  # noqa: E402

import httpx._transports.default  # noqa: E402
import pytest  # noqa: E402
from gradio_client import Client  # noqa: E402

from explorer.ui import build_demo  # noqa: E402
from served_app import launch  # noqa: E402


def _one_ssl_context_for_the_default_settings():
    """gradio_client opens a new httpx client for almost every request (upload, call, event stream, download), and
    each builds a TLS context by loading certifi's CA bundle: ~60 ms of CPU, ~0.29 of the 0.36 CPU-s a
    ``Client.predict`` of a digit cost here, though every test talks plain HTTP to 127.0.0.1. The tests' clients
    share one context for httpx's default settings instead (a context is safe to share; other settings are built
    as before). Nothing the server does or answers changes."""
    build = httpx._transports.default.create_ssl_context
    shared = functools.lru_cache(maxsize=None)(build)

    def create_ssl_context(verify=True, cert=None, trust_env=True):
        if verify is True and cert is None:
            return shared(verify=True, cert=None, trust_env=trust_env)
        return build(verify=verify, cert=cert, trust_env=trust_env)

    httpx._transports.default.create_ssl_context = create_ssl_context


_one_ssl_context_for_the_default_settings()

# Test files whose tests are independent enough to run on any xdist worker (each worker has its own app);
# every other file runs whole on one worker, so its module fixtures (a trained model, a browser) are built once.
SPREAD_FILES = {"test_hostile_api.py"}


def is_browser_test(item) -> bool:
    return item.path.name.startswith("test_browser_")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the xdist_group marks into the groups (this
# hook ran after it until 2026-11-27, so no group was ever formed: every file was spread over both workers)
def pytest_collection_modifyitems(items):
    # the browser tests first: they are the longest group and run on one worker, so they start at once and the
    # other workers fill the time around them
    items.sort(key=lambda item: not is_browser_test(item))
    for item in items:
        if is_browser_test(item):
            # One Chromium at a time: two browsers plus two apps sampling on 2 cores starved the pages' timers
            # and streams, and browser tests timed out at random while the other worker ran the rest.
            item.add_marker(pytest.mark.xdist_group("browser"))
            # A browser test that times out waiting for the page (Playwright's TimeoutError, seen only when the
            # machine is loaded) runs again, at most twice; any other failure, or a third timeout, fails the run.
            item.add_marker(pytest.mark.flaky(reruns=2, only_rerun=["TimeoutError"]))
        elif item.path.name not in SPREAD_FILES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))


@pytest.fixture(scope="session")
def app():
    """The whole app, launched once per test session (per xdist worker) on a free loopback port.

    Shared by the modules that only call it: none of them changes what another one sees."""
    demo = launch(build_demo())
    yield demo
    demo.close()


@pytest.fixture(scope="module")
def client(app):
    """A client (one session) per test module: a session's component settings (a slider's maximum after T
    changed) must not leak from one module's tests into another's."""
    return Client(app.local_url, verbose=False)
