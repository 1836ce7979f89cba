"""``exammentor.json_codec``: orjson writes, and what it writes reads back as the standard
library's text does; what orjson refuses still gets written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exammentor.json_codec import dumps, dumps_bytes

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text() | st.integers(), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(JSON_VALUES)
def test_anything_the_standard_library_writes_reads_back_the_same(value: Any) -> None:
    assert json.loads(dumps(value)) == json.loads(json.dumps(value))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"b": [1.5, None, True], 1: "a"}, '{"b":[1.5,null,true],"1":"a"}'),
        (2**64, "18446744073709551616"),  # past 64 bits: the standard library writes it
        ("\ud800", '"\\ud800"'),  # a lone surrogate, escaped as the standard library does
        ("é", '"é"'),
    ],
)
def test_the_text_written(value: Any, text: str) -> None:
    assert dumps(value) == text
    assert dumps_bytes(value) == text.encode()


def test_not_a_number_is_written_as_null_which_json_readers_accept() -> None:
    assert dumps({"x": float("nan"), "y": float("inf")}) == '{"x":null,"y":null}'


def test_an_object_json_has_no_form_for_is_refused() -> None:
    with pytest.raises(TypeError):
        dumps(object())
