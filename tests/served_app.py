"""Launching an app on a free loopback port with app.py's file settings, and raw HTTP calls to it (for the
hostile-input and security tests: gradio_client refuses to send NaN, untagged file payloads and the like)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import gradio as gr
import httpx

from explorer.ui import launch_settings

# One HTTP client for all calls: a new httpx client builds a certificate store each time (~30 ms of CPU).
HTTP = httpx.Client(timeout=60)

# What a user must never see in an answer: Python tracebacks or source locations.
TRACE_MARKERS = ("Traceback", 'File "/', "site-packages")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(demo: gr.Blocks, ready_within: float = 120.0) -> gr.Blocks:
    """Launch as app.py does (loopback, upload cap, only assets/ allowed, the page's scripts), without blocking.

    Gradio's own start-up check gives the page 3 s to answer and then refuses to start; on a machine busy with
    other work the page can take longer, so this waits for it (up to ``ready_within`` s) instead."""
    demo.queue().launch(**launch_settings(prevent_thread_lock=True, server_port=free_port(), _frontend=False))
    deadline = time.monotonic() + ready_within
    while True:
        try:
            if HTTP.get(demo.local_url, timeout=30).status_code == 200:
                return demo
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            demo.close()
            raise RuntimeError(f"the app at {demo.local_url} did not answer within {ready_within:g} s")
        time.sleep(0.5)


def base_url(demo: gr.Blocks) -> str:
    return demo.local_url.rstrip("/")


def raw_call(demo: gr.Blocks, api_name: str, payload: list | str, timeout: float = 60, session: str | None = None) -> str:
    """POST the inputs (a list, or hand-written JSON text for NaN/Infinity) and return the event stream's text.

    Without ``session`` each call is a new session (as a fresh visitor's first call); calls naming the same
    session share it, as one browser tab's do. Gradio builds a new session's state from the config of every
    block on the page (~100 ms of CPU here), so many calls in one session are much cheaper."""
    body = payload if isinstance(payload, str) else json.dumps(payload)
    base = base_url(demo)
    session_field = "" if session is None else f', "session_hash": {json.dumps(session)}'
    event = HTTP.post(f"{base}/gradio_api/call/{api_name}", content='{"data": ' + body + session_field + "}",
                      headers={"Content-Type": "application/json"}, timeout=timeout)
    event.raise_for_status()
    return HTTP.get(f"{base}/gradio_api/call/{api_name}/{event.json()['event_id']}", timeout=timeout).text


def error_message(stream: str) -> str | None:
    """The message of an ``event: error`` stream ('' when Gradio sends none); None when the call completed."""
    if "event: error" not in stream:
        return None
    payload = json.loads(stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0])
    return (payload or {}).get("error") or ""


def upload(demo: gr.Blocks, path: Path, name: str | None = None) -> httpx.Response:
    """Upload a file through Gradio's upload route, as the browser does."""
    with open(path, "rb") as f:
        return HTTP.post(f"{base_url(demo)}/gradio_api/upload", files=[("files", (name or path.name, f))])


def file_data(server_path: str, name: str) -> dict:
    """The payload a browser sends for a file it uploaded."""
    return {"path": server_path, "orig_name": name, "meta": {"_type": "gradio.FileData"}}
