"""DDPM Explorer: see the math of denoising diffusion models."""

import os

# OpenMP threads that wait for work by spinning stall torch ~50× when another process holds a core of
# this 2-core machine (measured: 2.5 s instead of 50 ms per model call). Sleeping waiters keep the
# cost of contention proportional. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
