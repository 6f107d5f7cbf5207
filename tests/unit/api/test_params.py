"""Request parameters: what the edge refuses (api/params.py), without a server."""

from __future__ import annotations

import json

import pytest
from starlette.datastructures import QueryParams

from keycrew.api.params import (
    MAX_DEPTH,
    MAX_ELEMENTS,
    BadRequestBody,
    Params,
    integer_text,
    parse_json_object,
    path_id,
    valid_text,
)
from keycrew.errors import BadParameter


def _nested(depth: int) -> bytes:
    """An object whose "a" holds arrays nested so that the whole is ``depth`` levels deep."""
    return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def test_nesting_up_to_the_limit_is_read() -> None:
    assert parse_json_object(_nested(MAX_DEPTH))["a"] is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
def test_nesting_beyond_the_limit_is_refused(depth: int) -> None:
    with pytest.raises(BadRequestBody):
        parse_json_object(_nested(depth))


def test_unclosed_nesting_is_refused() -> None:
    with pytest.raises(BadRequestBody):
        parse_json_object(b"[" * 100_000)


def test_too_many_values_are_refused() -> None:
    with pytest.raises(BadRequestBody, match="Too many total parameters"):
        parse_json_object(json.dumps({"a": [0] * (MAX_ELEMENTS + 1)}).encode())


def test_integers_beyond_64_bits_are_read_exactly() -> None:
    """orjson reads them as floats; the body is then read again by the stdlib, exactly."""
    assert parse_json_object(b'{"a": 99999999999999999999, "b": 1.5}') == {
        "a": 99999999999999999999,
        "b": 1.5,
    }


def test_integers_too_long_for_int_are_refused() -> None:
    with pytest.raises(BadRequestBody):
        parse_json_object(b'{"a": ' + b"9" * 5000 + b"}")


@pytest.mark.parametrize("body", [b"[1]", b'"a"', b"1", b"null", b"{", b"\xff", b'{"a": NaN}'])
def test_what_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(BadRequestBody):
        parse_json_object(body)


@pytest.mark.parametrize("body", [b'{"a": "\\ud800"}', b'{"\\udfff": 1}', b'{"a": ["x\\udc00"]}'])
def test_lone_surrogates_are_refused(body: bytes) -> None:
    with pytest.raises(BadRequestBody):
        parse_json_object(body)


def test_paired_surrogates_are_text() -> None:
    assert parse_json_object(b'{"a": "\\ud83d\\ude00"}') == {"a": "\U0001f600"}


@pytest.mark.parametrize("text", ["a\x00b", "\ud800", "x\udfffy"])
def test_text_that_cannot_be_stored(text: str) -> None:
    assert not valid_text(text)
    with pytest.raises(BadParameter, match=r"^name is invalid$"):
        Params(QueryParams(), {"name": text})
    with pytest.raises(BadParameter):
        Params(QueryParams(), {"list": ["ok", {"deep": text}]})


def test_a_bad_key_is_named_without_its_bad_characters() -> None:
    with pytest.raises(BadParameter, match=r"^ab is invalid$"):
        Params(QueryParams(), {"a\ud800b\x00": "x"})


def test_text_that_can_be_stored() -> None:
    assert valid_text("plain")
    assert valid_text("Ünïcödé 😀")
    assert valid_text("")


@pytest.mark.parametrize("text", ["1", "-1", "0", "0012", "9" * 1000])
def test_integer_text(text: str) -> None:
    assert integer_text(text)


@pytest.mark.parametrize(
    "text", ["", "-", " 1", "1 ", "1\n", "\t1", "+1", "1_000", "\uff11", "0x1", "1.0", "1e3", "9" * 1001]
)
def test_not_integer_text(text: str) -> None:
    assert not integer_text(text)


@pytest.mark.parametrize("text", [" 1", "1\n", "+1", "1_0", "\uff11", "9" * 5000])
def test_integer_parameters_refuse_what_is_not_plain_digits(text: str) -> None:
    params = Params(QueryParams({"per_page": text}), {})
    with pytest.raises(BadParameter, match=r"^per_page is invalid$"):
        params.integer("per_page")


def test_integer_parameters() -> None:
    params = Params(QueryParams({"a": "12", "b": ""}), {"c": 7, "d": -3})
    assert (params.integer("a"), params.integer("b"), params.integer("c"), params.integer("d")) == (
        12,
        None,
        7,
        -3,
    )
    assert Params(QueryParams({"ids": "1, 2,3"}), {}).integers("ids") == [1, 2, 3]
    with pytest.raises(BadParameter):
        Params(QueryParams({"ids": "1," + "9" * 5000}), {}).integers("ids")


def test_path_ids() -> None:
    assert path_id("12", "id") == 12
    assert path_id("9" * 5000, "id") == 0  # names nothing
    for raw in (" 1", "+1", "1_0", "\uff11", "-1"):
        with pytest.raises(BadParameter):
            path_id(raw, "id")
