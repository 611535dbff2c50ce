"""The floor of the load test: an app with the same `render_forward` API as DDPM Explorer that does no work.

    python benchmarks/load_test.py --server floor --samplers 0

Same inputs (an image and 8 values) and outputs (a PNG and a JSON) as the real endpoint, the same queue settings
as app.py, but the handler only returns a 28×28 grey PNG (its shade from t, saved with the app's own image_file)
and {"t": t}. What the slider users measure against it is what Gradio and gradio_client cost on this machine with
no computation at all: the real app cannot be faster than this.
"""

import os
import sys
from pathlib import Path

import gradio as gr
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from explorer.ui.common import image_file  # noqa: E402


def render_forward(image, family, steps, beta_start, beta_end, cosine_s, zero_terminal_snr, seed, t):
    return image_file(Image.new("L", (28, 28), int(t) % 256), "x_t"), {"t": int(t)}


with gr.Blocks() as demo:
    inputs = [gr.Image(type="filepath"), gr.Textbox(), gr.Number(), gr.Number(), gr.Number(), gr.Number(),
              gr.Checkbox(), gr.Number(), gr.Number()]
    outputs = [gr.Image(format="png"), gr.JSON()]
    gr.Button().click(render_forward, inputs, outputs, api_name="render_forward", concurrency_limit=None)

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=2, max_size=64).launch(
        server_name="127.0.0.1", server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
