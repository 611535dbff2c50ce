"""explorer.checks: values from people or the API, one message style."""

import math

import numpy as np
import pytest

from explorer import checks


@pytest.mark.parametrize("value, expected", [(3, 3), (3.0, 3), (np.int64(7), 7), (np.float32(2.0), 2)])
def test_whole_number_accepts_integral_values_as_int(value, expected):
    got = checks.whole_number("T", value, 1, 10)
    assert got == expected and type(got) is int


@pytest.mark.parametrize("value", [2.5, math.nan, math.inf, -math.inf, True, None, "3", [3], 0, 11])
def test_whole_number_refuses_with_label_range_and_value(value):
    with pytest.raises(ValueError, match=r"^T must be a whole number from 1 to 10, got "):
        checks.whole_number("T", value, 1, 10)


def test_open_ranges_are_said_as_such():
    with pytest.raises(ValueError, match="of at least 1, got 0"):
        checks.whole_number("Steps", 0, lo=1)
    with pytest.raises(ValueError, match="of at most 2, got 3.5"):
        checks.finite_number("w", 3.5, hi=2)


@pytest.mark.parametrize("value", [math.nan, math.inf, False, "0.5", None, -0.1, 1.1])
def test_finite_number_refuses_non_finite_and_out_of_range(value):
    with pytest.raises(ValueError, match=r"^η must be a number from 0 to 1, got "):
        checks.finite_number("η", value, 0.0, 1.0)


def test_finite_number_returns_a_float():
    assert checks.finite_number("η", 1, 0, 1) == 1.0 and type(checks.finite_number("η", 1, 0, 1)) is float


def test_one_of_compares_exactly_and_lists_the_choices():
    assert checks.one_of("sampler", "ddim", ("ddpm", "ddim")) == "ddim"
    for bad in ("DDIM", 1, None, ["ddim"]):
        with pytest.raises(ValueError, match=r"Unknown sampler .*; choose one of: ddpm, ddim\."):
            checks.one_of("sampler", bad, ("ddpm", "ddim"))


@pytest.mark.parametrize("value", [-1, 2**63, 1e308, 1.5, math.nan, True, "1"])
def test_seed_refuses_everything_but_whole_numbers_in_int64(value):
    with pytest.raises(ValueError, match=r"The seed must be a whole number from 0 to 2\^63 − 1"):
        checks.seed(value)


def test_seed_accepts_the_int64_range():
    assert checks.seed(0) == 0 and checks.seed(2**63 - 1) == 2**63 - 1 and checks.seed(5.0) == 5


def test_flag_takes_only_booleans():
    assert checks.flag("zero terminal SNR", np.bool_(True)) is True
    with pytest.raises(ValueError, match="must be true or false"):
        checks.flag("zero terminal SNR", 1)
