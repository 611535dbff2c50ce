"""Soak: the load test's classroom mix for 10 minutes, with sessions ending and starting all the time; the
server's memory and temporary files must stay flat.

    python benchmarks/soak_test.py [--duration 600] [--session 60] [--sliders 20] [--samplers 4]

Every user closes its session after --session seconds and opens a new one (a page reload), so hundreds of
sessions start and end. The server (app.py, as shipped, except that its temp-file cleanup runs every 20 s for
files older than 40 s instead of every 5 min for files older than 1 h, so that a cleanup cycle fits in the run)
is sampled every 5 s: resident memory (RSS) and the files in its GRADIO_TEMP_DIR. The script stops by itself.

Temp files must be released: once the users have left, at most 5 % of the run's peak count (or 50) remain.
Flat means: after the first two minutes of warm-up (caches, allocator pools), the RSS of the last two minutes
is within 10 % of the RSS of minutes 2–4, and the fitted slope over the second half is under 5 MB/min.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_test import Server, add_mix_arguments, ms_percentiles, percentiles_ms, run_mix  # noqa: E402

SOAK_CLEANUP = (20, 40)  # (every s, older than s) for the soak's server
SERVE = ("import runpy, explorer.ui as ui; ui.CACHE_CLEANUP = {cleanup!r}; "
         "runpy.run_path('app.py', run_name='__main__')")


def flatness(samples: list[tuple], warmup: float) -> dict:
    """Compare the RSS after warm-up with the RSS at the end; fit a slope to the second half."""
    t = np.array([s[0] for s in samples], dtype=float)
    rss = np.array([s[1] for s in samples], dtype=float)
    end = t.max()
    early = rss[(t >= warmup) & (t < warmup + 120)]
    late = rss[t >= end - 120]
    second_half = t >= end / 2
    slope = float(np.polyfit(t[second_half] / 60, rss[second_half], 1)[0]) if second_half.sum() >= 3 else 0.0
    early_mb = float(np.median(early)) if len(early) else float(rss[0])
    late_mb = float(np.median(late))
    return {"rss_after_warmup_mb": round(early_mb), "rss_at_end_mb": round(late_mb),
            "growth_pct": round(100 * (late_mb - early_mb) / early_mb, 1), "slope_mb_per_min": round(slope, 2),
            "rss_peak_mb": round(float(rss.max()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default: 10 minutes)")
    parser.add_argument("--session", type=float, default=60.0, help="seconds before a user reloads (new session)")
    add_mix_arguments(parser)
    args = parser.parse_args()
    warmup = min(120.0, args.duration / 5)

    server = Server([sys.executable, "-c", SERVE.format(cleanup=SOAK_CLEANUP)])
    try:
        rss0 = server.rss_mb()
        print(f"server: app.py (pid {server.proc.pid}, temp cleanup every {SOAK_CLEANUP[0]} s for files older "
              f"than {SOAK_CLEANUP[1]} s) at {server.url}, RSS {rss0:.0f} MB at start", flush=True)
        started = time.time()
        stats, samples = run_mix(server, args.sliders, args.samplers, baseline=0.0, duration=args.duration,
                                 processes=args.processes, session_s=args.session)
        # sessions have all ended now: wait until every file of the run is past the age and a cleanup has run
        time.sleep(sum(SOAK_CLEANUP) + 5)
        after = (server.rss_mb(), *server.temp_files())
        wall = time.time() - started
    finally:
        server.stop()

    samples = [s for s in samples if s[0] >= 0]
    figures = flatness(samples, warmup)
    mixed = [lat for _, lat, _ in stats.slider]
    figures.update(
        seconds=round(wall), sessions=stats.sessions, errors=len(stats.errors),
        requests_served=len(stats.slider) + len(stats.samples) + len(stats.scrubs),
        slider_renders=len(stats.slider), sampling_runs=len(stats.samples), slider_ms=percentiles_ms(mixed),
        temp_files_max=max(s[2] for s in samples), temp_files_after=after[1], rss_after_users_left_mb=round(after[0]),
        rss_every_5s=[round(s[1]) for s in samples], temp_files_every_5s=[s[2] for s in samples],
    )
    flat = figures["growth_pct"] <= 10 and figures["slope_mb_per_min"] <= 5
    print()
    print(f"soak: {args.duration / 60:.0f} min, {args.sliders} slider + {args.samplers} sampler users, a new session "
          f"every {args.session:.0f} s per user → {stats.sessions} sessions")
    print(f"requests served: {figures['requests_served']} ({len(stats.slider)} slider renders, {len(stats.samples)} "
          f"sampling runs, {len(stats.scrubs)} scrubs); errors: {len(stats.errors)}")
    print(f"slider latency: {ms_percentiles(mixed)}")
    print(f"RSS: {rss0:.0f} MB at start, {figures['rss_after_warmup_mb']} MB after warm-up, "
          f"{figures['rss_at_end_mb']} MB in the last 2 min ({figures['growth_pct']:+.1f} %), slope over the second "
          f"half {figures['slope_mb_per_min']:+.2f} MB/min, peak {figures['rss_peak_mb']} MB; "
          f"{figures['rss_after_users_left_mb']} MB after all sessions ended")
    minute = [round(s[1]) for s in samples if s[0] % 60 < 5]
    print(f"RSS once a minute (MB): {minute}")
    print(f"temp files: at most {figures['temp_files_max']} during the run, {after[1]} ({after[2]:.1f} MB) "
          f"{sum(SOAK_CLEANUP) + 5} s after the users left")
    for user, message in stats.errors[:10]:
        print(f"  error {user}: {message}")
    released = after[1] <= max(50, 0.05 * figures["temp_files_max"])  # what is left: examples, default images
    verdict = "PASS" if flat and released and not stats.errors else "FAIL"
    print(f"{verdict}: memory {'flat' if flat else 'GROWING'}, temp files {'released' if released else 'PILING UP'}, "
          f"errors {len(stats.errors)}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
