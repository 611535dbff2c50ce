"""Checks for values that come from people or the API: one place, one message style.

Every check returns the value in its plain Python type or raises ``ValueError`` whose message a
user can read: "<Label> must be <what> from <lo> to <hi>, got <value>." The UI shows it as a
``gr.Error``; the CLIs print it. Booleans are refused where numbers are expected (JSON ``true``
is not 1 step), and NaN / ±inf never pass a range.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

_REAL = (int, float, np.integer, np.floating)
MAX_SEED = 2**63 - 1  # torch.Generator.manual_seed takes any int64


def _is_real(v) -> bool:
    return isinstance(v, _REAL) and not isinstance(v, (bool, np.bool_))


def _range_text(lo, hi) -> str:
    if lo is None and hi is None:
        return ""
    if hi is None:
        return f" of at least {lo:g}"
    if lo is None:
        return f" of at most {hi:g}"
    return f" from {lo:g} to {hi:g}"


def whole_number(label: str, v, lo: int | None = None, hi: int | None = None) -> int:
    """``v`` as an int in [lo, hi] (either bound may be None); 3.0 is accepted as 3, 3.5 is not."""
    if _is_real(v) and not isinstance(v, (int, np.integer)):
        ok = math.isfinite(v) and v == int(v)
    else:
        ok = _is_real(v)
    if ok:
        n = int(v)
        if (lo is None or n >= lo) and (hi is None or n <= hi):
            return n
    raise ValueError(f"{label} must be a whole number{_range_text(lo, hi)}, got {v!r}.")


def finite_number(label: str, v, lo: float | None = None, hi: float | None = None) -> float:
    """``v`` as a finite float in [lo, hi] (either bound may be None)."""
    if _is_real(v) and math.isfinite(v) and (lo is None or v >= lo) and (hi is None or v <= hi):
        return float(v)
    raise ValueError(f"{label} must be a number{_range_text(lo, hi)}, got {v!r}.")


def one_of(label: str, v, choices: Iterable):
    """``v`` if it is one of ``choices`` (compared as given, so "3" is not 3)."""
    choices = tuple(choices)
    if isinstance(v, (str, int)) and not isinstance(v, bool) and v in choices:
        return v
    raise ValueError(f"Unknown {label} {v!r}; choose one of: {', '.join(map(str, choices))}.")


def flag(label: str, v) -> bool:
    """True or False (the API may send JSON true/false only)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    raise ValueError(f"{label} must be true or false, got {v!r}.")


def seed(v) -> int:
    """A random seed: a whole number from 0 to 2^63 − 1 (a huge int the API rounds 1e308 to is refused too)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        if 0 <= v <= MAX_SEED:
            return int(v)
    elif _is_real(v) and math.isfinite(v) and v == int(v) and 0 <= v <= MAX_SEED:
        return int(v)
    raise ValueError(f"The seed must be a whole number from 0 to 2^63 − 1, got {v!r}.")
