"""Classroom load: 20 users drag the Forward timestep slider while 4 others sample in the Reverse tab.

    python benchmarks/load_test.py [--duration 60] [--baseline 15] [--sliders 20] [--samplers 4]
    python benchmarks/load_test.py --server floor --samplers 0   # the same API with no work behind it

Starts `python app.py` (its own queue settings) as a separate server process on a free loopback port with its
own GRADIO_TEMP_DIR, then runs the users as gradio_client clients, each with its own session:

* a slider user drags "Timestep t" in bursts (1–2 s of moves, 20 input events per second, then a pause) and
  asks the server for each x_t through the `render_forward` API. Like the browser's ``trigger_mode="always_last"``
  it has one request in flight at most: events that arrive meanwhile collapse into the newest ("coalesced").
  Latency = from sending an event to holding the rendered PNG (the client downloads it, as a browser would).
* a sampler user runs `reverse_sample` (DDIM 50 steps × 16 digits, alternately with guidance w = 3), reads the
  streamed frames, then scrubs 5 recorded frames with `reverse_view`, and starts again.

First the sliders run alone for --baseline seconds, then the whole mix for --duration seconds: comparing the two
slider latencies shows whether slider events wait behind sampling. Prints requests served, errors (must be 0),
slider p50/p95/p99 (target p95 ≤ 250 ms on the 2-core machine), sampling runs, and the server's RSS.
The clients run on the same machine as the server and take a large share of its CPU (see README, "Load and
soak"); --server floor measures that floor, --client-nice lowers the clients' CPU priority.
Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
IMAGES = ["mnist_0.png", "mnist_2.png", "mnist_3.png", "mnist_5.png", "mnist_7.png", "astronaut.png"]
LINEAR = ["linear", 1000, 1e-4, 0.02, 0.008, False]
EVENT_HZ = 20  # input events per second while dragging (browsers fire them at up to the frame rate)
SLIDER_TARGET_P95_MS = 250.0
SERVERS = {"app": "app.py", "floor": "benchmarks/floor_app.py"}  # --server: the script run as the server


# ------------------------------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """`python app.py` in its own process (so its RSS and temp files can be measured), on a free loopback port."""

    def __init__(self, command: list[str] | None = None, env_extra: dict | None = None):
        self.port = free_port()
        self.temp_dir = Path(tempfile.mkdtemp(prefix="ddpm-load-"))
        env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port),
                   GRADIO_TEMP_DIR=str(self.temp_dir), GRADIO_ANALYTICS_ENABLED="False", **(env_extra or {}))
        self.log = open(self.temp_dir.parent / f"{self.temp_dir.name}.log", "w")
        self.proc = subprocess.Popen(command or [sys.executable, "app.py"], cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.url + "config", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("app.py did not start within 120 s")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def temp_files(self) -> tuple[int, float]:
        """(number of files, MB) under the server's GRADIO_TEMP_DIR."""
        count, size = 0, 0
        for folder, _, names in os.walk(self.temp_dir):  # the server deletes files meanwhile: skip vanished ones
            for name in names:
                try:
                    size += os.stat(os.path.join(folder, name)).st_size
                    count += 1
                except FileNotFoundError:
                    pass
        return count, size / 2**20

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        Path(self.log.name).unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ the users


@dataclass
class Stats:
    """What the users of one process saw; appended to from many threads (list.append is atomic)."""

    mixed_from: float = 0.0  # wall-clock time when the samplers join: slider requests sent later are "mixed"
    slider: list = field(default_factory=list)  # (time sent, latency s, phase)
    coalesced: list = field(default_factory=list)  # events that collapsed into a newer one
    samples: list = field(default_factory=list)  # (start, seconds, streamed updates)
    scrubs: list = field(default_factory=list)  # latency s
    errors: list = field(default_factory=list)  # (user, message)
    sessions: int = 0  # client sessions opened (and closed)

    def phase(self, when: float) -> str:
        return "mixed" if when >= self.mixed_from else "baseline"

    def merge(self, other: "Stats") -> None:
        for name in ("slider", "coalesced", "samples", "scrubs", "errors"):
            getattr(self, name).extend(getattr(other, name))
        self.sessions += other.sessions


def new_client(url: str) -> Client:
    # ssl_verify=False: the server is plain http on loopback, and with verification on, httpx builds a
    # certificate store for every request (~30 ms of client CPU each), which would throttle the load generator
    return Client(url, verbose=False, ssl_verify=False)


def uploaded_path(client: Client, image: Path) -> dict:
    """Upload the user's image once (as the browser does) -> a FileData dict that points at the server's copy.

    It carries no ``meta`` tag, so gradio_client sends it as it is instead of uploading the file again for every
    request; the server's handlers accept it because it lies in Gradio's upload folder.
    """
    with open(image, "rb") as f:
        r = httpx.post(client.src.rstrip("/") + "/gradio_api/upload", files=[("files", (image.name, f))], timeout=30)
    r.raise_for_status()
    return {"path": r.json()[0], "orig_name": image.name}


class User(threading.Thread):
    """One user: a client session that acts until ``stop``; with ``session_s``, it closes its session after that
    long and opens a new one (a page reload), so that sessions keep ending during a soak."""

    def __init__(self, url: str, index: int, stats: Stats, stop: threading.Event, session_s: float | None = None):
        super().__init__(name=f"{type(self).__name__}-{index}", daemon=True)
        self.url, self.index, self.stats, self.stop, self.session_s = url, index, stats, stop, session_s
        self.rng = random.Random(index)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                client = new_client(self.url)
            except Exception as e:  # noqa: BLE001 — every failure is counted and printed
                self.stats.errors.append((self.name, f"connect: {e!r}"))
                self.stop.wait(1.0)
                continue
            self.stats.sessions += 1
            ends = time.time() + (self.session_s or float("inf"))
            try:
                self.session(client, ends)
            except Exception as e:  # noqa: BLE001
                self.stats.errors.append((self.name, repr(e)[:300]))
            finally:
                client.close()

    def session(self, client: Client, ends: float) -> None:
        raise NotImplementedError


class SliderUser(User):
    def session(self, client: Client, ends: float) -> None:
        image = uploaded_path(client, ASSETS / IMAGES[self.index % len(IMAGES)])
        while not self.stop.is_set() and time.time() < ends:
            self.drag(client, image, seed=self.index)
            self.stop.wait(self.rng.uniform(0.3, 1.2))  # the user looks at the picture

    def drag(self, client: Client, image: dict, seed: int) -> None:
        """One drag: t moves from a to b over 1–2 s; one request in flight, later events collapse into the newest."""
        a, b = self.rng.randrange(0, 1001), self.rng.randrange(0, 1001)
        length = self.rng.uniform(1.0, 2.0)
        start = time.perf_counter()
        last_event = -1
        while not self.stop.is_set():
            elapsed = time.perf_counter() - start
            if elapsed > length:
                break
            event = int(elapsed * EVENT_HZ)  # the newest input event so far
            if event == last_event:
                time.sleep((event + 1) / EVENT_HZ - elapsed)
                continue
            self.stats.coalesced.append(max(0, event - last_event - 1))
            last_event = event
            t = round(a + (b - a) * min(elapsed / length, 1.0))
            sent, when = time.perf_counter(), time.time()
            try:
                image_out, numbers = client.predict(image, *LINEAR, seed, t, api_name="/render_forward")
                if numbers["t"] != t or not os.path.getsize(image_out):
                    raise AssertionError(f"wrong answer for t={t}: {numbers.get('t')}")
            except Exception as e:  # noqa: BLE001
                self.stats.errors.append((self.name, repr(e)[:300]))
                continue
            self.stats.slider.append((when, time.perf_counter() - sent, self.stats.phase(when)))


class SamplerUser(User):
    def session(self, client: Client, ends: float) -> None:
        run = 0
        while not self.stop.is_set() and time.time() < ends:
            self.sample_and_scrub(client, guidance=3.0 if run % 2 else 1.0, seed=100 * self.index + run)
            run += 1
            self.stop.wait(1.0)

    def sample_and_scrub(self, client: Client, guidance: float, seed: int) -> None:
        start = time.perf_counter()
        try:
            job = client.submit(*LINEAR, "ddim", 50, 0.0, "trailing", "mixed", guidance, seed, 16,
                                api_name="/reverse_sample")
            updates = sum(1 for _ in job)
            final = job.outputs()[-1]
            if "Done" not in str(final):
                raise AssertionError(f"sampling did not finish: {str(final)[:200]}")
        except Exception as e:  # noqa: BLE001
            self.stats.errors.append((self.name, repr(e)[:300]))
            return
        self.stats.samples.append((time.time(), time.perf_counter() - start, updates))
        for k in (0, 12, 25, 37, 50):
            if self.stop.is_set():
                return
            sent = time.perf_counter()
            try:
                out = str(client.predict(k, api_name="/reverse_view"))
                if not re.search(rf"frame\W{{1,3}}{k}\b", out):
                    raise AssertionError(f"reverse_view({k}) did not show frame {k}: {out[:200]}")
            except Exception as e:  # noqa: BLE001
                self.stats.errors.append((self.name, repr(e)[:300]))
                continue
            self.stats.scrubs.append(time.perf_counter() - sent)
            time.sleep(0.3)


def run_users(kind: str, indices: list[int], url: str, mixed_from: float, until: float, session_s, results,
              nice: int = 0) -> None:
    """A client process: its users act from now (sliders) or from mixed_from (samplers) until ``until``."""
    os.nice(nice)
    stats, stop = Stats(mixed_from=mixed_from), threading.Event()
    cls = SliderUser if kind == "slider" else SamplerUser
    if kind == "sampler":
        time.sleep(max(0.0, mixed_from - time.time()))
    users = [cls(url, i, stats, stop, session_s) for i in indices]
    for user in users:
        user.start()
    time.sleep(max(0.0, until - time.time()))
    stop.set()
    for user in users:
        user.join(timeout=120)
    results.put(stats)


# ------------------------------------------------------------------------------------------ running a mix


def run_mix(server: Server, sliders: int, samplers: int, baseline: float, duration: float, processes: int,
            session_s: float | None = None, every: float = 5.0, nice: int = 0) -> tuple[Stats, list[tuple]]:
    """Run the users in client processes (sliders split over ``processes``, samplers in one more) against
    ``server``; returns the merged stats and the samples (seconds since the mix began, RSS MB, temp files,
    temp MB) taken every ``every`` seconds."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    mixed_from = time.time() + baseline + 5.0  # + the client processes' start-up
    until = mixed_from + duration
    groups = [list(range(sliders))[i::processes] for i in range(processes)]
    procs = [ctx.Process(target=run_users, args=("slider", g, server.url, mixed_from, until, session_s, results,
                                                 nice)) for g in groups if g]
    if samplers:
        procs.append(ctx.Process(target=run_users, args=("sampler", list(range(samplers)), server.url, mixed_from,
                                                         until, session_s, results, nice)))
    for proc in procs:
        proc.start()
    samples = []
    while time.time() < until:
        time.sleep(max(0.0, min(every, until - time.time())))
        samples.append((round(time.time() - mixed_from), server.rss_mb(), *server.temp_files()))
        phase = "sliders alone" if samples[-1][0] < 0 else "full mix"
        print(f"  {samples[-1][0]:5d} s ({phase}): server RSS {samples[-1][1]:.0f} MB, "
              f"{samples[-1][2]} temp files ({samples[-1][3]:.1f} MB)", flush=True)
    stats = Stats(mixed_from=mixed_from)
    for _ in procs:
        stats.merge(results.get(timeout=300))
    for proc in procs:
        proc.join(timeout=60)
    return stats, samples


# ------------------------------------------------------------------------------------------ reporting


def ms_percentiles(latencies) -> str:
    if not len(latencies):
        return "none"
    a = np.asarray(latencies) * 1000
    return (f"n={len(a)}  p50={np.percentile(a, 50):.0f} ms  p95={np.percentile(a, 95):.0f} ms  "
            f"p99={np.percentile(a, 99):.0f} ms  max={a.max():.0f} ms")


def percentiles_ms(latencies) -> dict:
    a = np.asarray(latencies) * 1000
    return {q: round(float(np.percentile(a, q)), 1) for q in (50, 95, 99)} if len(a) else {}


def add_mix_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the user mix, shared with soak_test.py."""
    parser.add_argument("--sliders", type=int, default=20)
    parser.add_argument("--samplers", type=int, default=4)
    parser.add_argument("--processes", type=int, default=4, help="client processes for the slider users")
    parser.add_argument("--json", help="also write the figures to this file")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the full mix")
    parser.add_argument("--baseline", type=float, default=15.0, help="seconds of sliders alone first")
    parser.add_argument("--server", choices=sorted(SERVERS), default="app",
                        help="app: app.py as shipped; floor: benchmarks/floor_app.py, the same render_forward API "
                             "doing no work (what Gradio and gradio_client alone cost; use with --samplers 0)")
    parser.add_argument("--client-nice", type=int, default=0,
                        help="run the client processes at this niceness (e.g. 19), so that the load generator, "
                             "which shares the 2 cores here, yields the CPU to the server under test")
    add_mix_arguments(parser)
    args = parser.parse_args()
    if args.server == "floor" and args.samplers:
        parser.error("the floor app has no sampling: use --samplers 0 with --server floor")

    server = Server([sys.executable, SERVERS[args.server]])
    try:
        print(f"server: {SERVERS[args.server]} (pid {server.proc.pid}) at {server.url}, RSS {server.rss_mb():.0f} MB; "
              f"{args.sliders} slider users in {args.processes} client processes, {args.samplers} sampler users",
              flush=True)
        cpu0 = server.cpu_seconds()
        stats, samples = run_mix(server, args.sliders, args.samplers, args.baseline, args.duration, args.processes,
                                 nice=args.client_nice)
        server_cpu = (server.cpu_seconds() - cpu0) / (args.baseline + 5 + args.duration)
    finally:
        server.stop()

    alone = [lat for _, lat, phase in stats.slider if phase == "baseline"]
    mixed = [lat for _, lat, phase in stats.slider if phase == "mixed"]
    figures = {
        "requests_served": len(stats.slider) + len(stats.samples) + len(stats.scrubs),
        "slider_renders": len(stats.slider), "slider_renders_mixed": len(mixed),
        "slider_renders_per_s_mixed": round(len(mixed) / args.duration, 1),
        "events_coalesced": int(sum(stats.coalesced)), "sampling_runs": len(stats.samples),
        "scrubs": len(stats.scrubs), "errors": len(stats.errors),
        "slider_alone_ms": percentiles_ms(alone), "slider_mixed_ms": percentiles_ms(mixed),
        "scrub_ms": percentiles_ms(stats.scrubs),
        "sampling_run_s": round(float(np.mean([s for _, s, _ in stats.samples])), 2) if stats.samples else None,
        "server_cpu_cores": round(server_cpu, 2), "rss_mb": [(t, round(r)) for t, r, _, _ in samples],
    }
    print()
    print(f"{args.sliders} slider users + {args.samplers} sampler users: {args.duration:.0f} s of the full mix "
          f"after {args.baseline:.0f} s of sliders alone")
    print(f"requests served: {figures['requests_served']} ({len(stats.slider)} slider renders, "
          f"{len(stats.samples)} sampling runs, {len(stats.scrubs)} scrubs); errors: {len(stats.errors)}")
    print(f"slider, alone          : {ms_percentiles(alone)}")
    print(f"slider, while sampling : {ms_percentiles(mixed)}  ({figures['slider_renders_per_s_mixed']} renders/s; "
          f"{figures['events_coalesced']} input events coalesced by always_last)")
    if stats.samples:
        print(f"sampling: {len(stats.samples)} runs of DDIM-50 × 16 digits, {figures['sampling_run_s']:.1f} s each "
              f"on average (queued included); scrubs {ms_percentiles(stats.scrubs)}")
    print(f"server: {server_cpu:.2f} CPU cores busy on average; RSS (MB) every 5 s: "
          f"{[round(r) for _, r, _, _ in samples]}")
    for user, message in stats.errors[:10]:
        print(f"  error {user}: {message}")
    p95 = figures["slider_mixed_ms"].get(95, float("inf"))
    verdict = "PASS" if not stats.errors and p95 <= SLIDER_TARGET_P95_MS else "FAIL"
    print(f"{verdict}: errors {len(stats.errors)} (must be 0), slider p95 while sampling {p95:.0f} ms "
          f"(target ≤ {SLIDER_TARGET_P95_MS:.0f} ms)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
