"""benchmarks/real_photos.py's paired comparison of tokenizers over the same photos."""

import math

import pytest
from benchmark_scripts import load_benchmark


def _interval(text: str, label: str) -> tuple[float, float, float]:
    part = text.split(f"{label} - ")[1]
    mean = float(part.split(": ")[1].split(" dB")[0])
    low, high = (float(x) for x in part.split("[")[1].split("]")[0].split(", "))
    return mean, low, high


def test_paired_lines_compare_each_tokenizer_with_the_first_at_its_size():
    paired_lines = load_benchmark("real_photos").paired_lines
    first = {"a": 20.0, "b": 30.0, "c": 25.0, "d": 22.0}
    better = {"a": 20.5, "b": 30.5, "c": 24.9, "d": 22.5}
    big, bigger = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}, {"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}
    text = paired_lines([("first", 64, first), ("big", 128, big), ("better", 64, better), ("bigger", 128, bigger)])
    mean, low, high = _interval(text, "better")
    assert "better - first: " in text and "higher on 3 / 4 photos" in text
    assert math.isclose(mean, 0.35, abs_tol=1e-3) and low < mean < high  # the differences are not all equal
    assert _interval(text, "bigger")[0] == -1.5 and "bigger - big: " in text  # paired within its own size
    assert "big - first" not in text and "bigger - first" not in text


def test_paired_lines_leave_out_photos_without_a_score():
    first = {"a": 20.0, "b": 30.0, "c": 25.0}
    other = {"a": 21.0, "b": float("nan"), "c": 26.0}
    text = load_benchmark("real_photos").paired_lines([("first", 64, first), ("other", 64, other)])
    assert _interval(text, "other") == (1.0, 1.0, 1.0) and "higher on 2 / 2 photos" in text


@pytest.mark.parametrize(
    "scored",
    [
        [("only", 64, {"a": 1.0})],
        [("a", 64, {"x": 1.0}), ("b", 128, {"x": 2.0})],
        [("a", 64, {"x": 1.0}), ("b", 64, {"x": float("nan")})],
    ],
)
def test_paired_lines_are_empty_when_nothing_pairs(scored):
    assert load_benchmark("real_photos").paired_lines(scored) == ""
