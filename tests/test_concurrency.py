"""Many users asking for the same picture at the same moment (a classroom on the default example and seed).

Gradio names an output file by the hash of its bytes and rewrites it in place, so identical renders requested
together write the same file while others are downloading it: a reader can get a truncated or empty file.
Every user here must get the complete, correct image.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from gradio_client import Client, handle_file
from PIL import Image

from explorer import data
from explorer.diffusion import q_sample
from explorer.schedules import make_schedule

PHOTO = str(data.ASSETS_DIR / "astronaut.png")
LINEAR = ["linear", 1000, 1e-4, 0.02, 0.008, False]
USERS, ROUNDS = 12, 6


def test_identical_renders_requested_together_all_arrive_whole(app):
    clients = [Client(app.local_url, verbose=False) for _ in range(USERS)]
    s = make_schedule("linear", 1000)
    x0 = data.image_to_tensor(data.load_image(PHOTO))
    expected = {t: data.tensor_to_uint8(q_sample(x0, t, data.fixed_noise(0, tuple(x0.shape)), s))
                for t in range(100, 100 + ROUNDS)}

    def render(client, t):
        path, numbers = client.predict(handle_file(PHOTO), *LINEAR, 0, t, api_name="/render_forward")
        return t, path, numbers

    failures = []
    with ThreadPoolExecutor(USERS) as pool:
        for t in expected:  # each round: every user asks for the same x_t at once
            for future in [pool.submit(render, c, t) for c in clients]:
                try:
                    t_, path, numbers = future.result(timeout=120)
                    got = np.asarray(Image.open(path).convert("RGB"))
                    if numbers["t"] != t_ or not np.array_equal(got, expected[t_]):
                        failures.append(f"t={t_}: wrong picture")
                except Exception as e:  # noqa: BLE001 — a truncated download, an unreadable PNG: all failures
                    failures.append(f"t={t}: {e!r}"[:200])
    for c in clients:
        c.close()
    assert not failures, f"{len(failures)} of {USERS * ROUNDS} renders failed:\n" + "\n".join(failures[:10])
