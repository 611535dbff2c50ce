"""Run DDPM Explorer: `python app.py` serves http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)."""

import os

from explorer.devices import ENV_VAR, app_device
from explorer.ui import build_demo, launch_settings

if __name__ == "__main__":
    try:
        print(f"The digit model runs on: {app_device()} (set {ENV_VAR}=auto|cpu|cuda|mps to choose)")
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    build_demo().queue(default_concurrency_limit=2, max_size=64).launch(**launch_settings(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
    ))
