"""The server's text blob check (tejas_ml/texts.py) refuses a blank text by the rule the app and the core
apply (rules.json text.$blank: class_name.blank's characters), in the same words; a text with anything
else in it is accepted."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tejas.rules import BLANK_TEXT, RULES, code_points, is_blank_text
from tejas_ml.texts import TextError, check_text

from .conftest import Account, sha

BLANK = [chr(c) for c in sorted(code_points(RULES["class_name"]["blank"]))]  # what text.$blank calls blank


def refusal(data: bytes) -> str | None:
    try:
        check_text(data)
    except TextError as error:
        return str(error)
    return None


def test_every_blank_character_alone_and_all_together_is_refused_in_the_apps_words():
    assert BLANK_TEXT == "empty (nothing but spaces)"
    # where String.prototype.trim and str.strip disagree, and the empty text
    for text in ["", "\ufeff", "\u180e", "\x85", "\x1c\x1d\x1e\x1f", "\u200b", " \t\r\n", "\u3000\u2028"]:
        assert refusal(text.encode()) == BLANK_TEXT, ascii(text)
    for ch in BLANK:
        assert refusal(ch.encode()) == BLANK_TEXT, ascii(ch)
    assert refusal("".join(BLANK[:1000]).encode()) == BLANK_TEXT


def test_length_is_counted_in_code_points_and_nul_refused_in_the_apps_words():
    assert check_text(("😀" * 5000).encode()) == "😀" * 5000  # 20,000 bytes, 10,000 UTF-16 units
    assert refusal(("😀" * 5001).encode()).startswith("20,004 bytes is more than")  # over what 5,000 can take
    assert refusal(("é" * 5001).encode()) == "too long (5,001 characters; at most 5,000)"
    assert refusal(b"a\x00b") == "contains a NUL character (binary data, not text)"


def test_a_text_with_something_visible_is_accepted():
    for text in ["\ufeffhello", " a ", "\u200b😀", "\u00ad\u0301x"]:
        assert check_text(text.encode()) == text


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(BLANK) | st.sampled_from("ab😀\x01\u2800"), max_size=20))
def test_the_server_refuses_exactly_the_texts_the_core_calls_blank(text):
    expected = BLANK_TEXT if is_blank_text(text) else None
    assert refusal(text.encode("utf-8")) == expected


def test_the_blob_route_answers_400_with_the_reason(embedded_server):
    account = Account(embedded_server().url)
    for text in ["\ufeff", "\u180e\u180e", ""]:
        body = text.encode()
        response = account.put(
            f"/api/blobs/{sha(body)}",
            params={"kind": "text"},
            content=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == f"Not accepted as a text: {BLANK_TEXT}.", ascii(text)
