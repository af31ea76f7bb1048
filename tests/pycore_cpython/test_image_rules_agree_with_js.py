"""The image rule (rules.json "image") gives the same answers in the app (features/rules.js
imageSizeProblem, resizeProblem) and the core (tejas.rules.image_size_problem, resize_problem), messages
included, on generated sizes: strips, panoramas at and around the ratio limit, the pixel limit's edges."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from tejas.rules import image_size_problem, resize_problem

from .test_rules_agree_with_js import CASES, js  # noqa: F401 (the fixture: one Node process for the module)

sides = st.one_of(st.integers(1, 70_000), st.sampled_from([1, 2, 19, 20, 21, 183, 399, 400, 401, 8000, 8001, 65535]))
limits = st.sampled_from([64_000_000, 500_000, 1_234_567])
ratios = st.one_of(st.none(), st.sampled_from([1, 10, 20, 25]))


@CASES
@given(width=sides, height=sides, max_pixels=limits, max_ratio=ratios)
@example(width=3000, height=1, max_pixels=64_000_000, max_ratio=20)
@example(width=20, height=400, max_pixels=64_000_000, max_ratio=20)
@example(width=8000, height=8000, max_pixels=64_000_000, max_ratio=20)
@example(width=8001, height=8000, max_pixels=64_000_000, max_ratio=20)
def test_image_size_rule_agrees(js, width, height, max_pixels, max_ratio):  # noqa: F811
    ours = image_size_problem(width, height, max_pixels, max_ratio)
    assert js("imageSize", width, height, max_pixels, max_ratio) == {"value": ours}


@CASES
@given(width=sides, height=sides, shorter=st.sampled_from([1, 160, 183, 224, 518, 2000]), max_pixels=limits)
@example(width=4000, height=200, shorter=2000, max_pixels=64_000_000)
@example(width=3, height=7, shorter=183, max_pixels=64_000_000)  # a long side that is not a whole number
def test_resize_rule_agrees(js, width, height, shorter, max_pixels):  # noqa: F811
    assert js("resize", width, height, shorter, max_pixels) == {
        "value": resize_problem(width, height, shorter, max_pixels)
    }
