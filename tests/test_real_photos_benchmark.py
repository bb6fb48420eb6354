"""benchmarks/real_photos.py's paired comparison of tokenizers over the same photos."""

import pytest
from benchmark_scripts import load_benchmark


def test_paired_lines_compare_each_tokenizer_with_the_first_at_the_same_size():
    paired_lines = load_benchmark("real_photos").paired_lines
    first = {"a": 20.0, "b": 30.0, "c": 25.0}
    better = {"a": 20.5, "b": 30.5, "c": 24.9}
    other_size = {"a": 0.0, "b": 0.0, "c": 0.0}
    text = paired_lines([("first", 64, first), ("better", 64, better), ("big", 128, other_size)])
    mean = (0.5 + 0.5 - 0.1) / 3
    assert f"better - first: {mean:+.3f} dB [" in text
    assert "higher on 2 / 3 photos" in text
    low, high = (float(x) for x in text.split("[")[1].split("]")[0].split(", "))
    assert low <= mean <= high and low >= -0.1 - 1e-9 and high <= 0.5 + 1e-9
    assert "big" not in text  # another input size: other views, nothing to pair


@pytest.mark.parametrize("scored", [[("only", 64, {"a": 1.0})], [("a", 64, {"x": 1.0}), ("b", 128, {"x": 2.0})]])
def test_paired_lines_are_empty_when_nothing_pairs(scored):
    assert load_benchmark("real_photos").paired_lines(scored) == ""
