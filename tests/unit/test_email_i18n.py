"""Choosing the confirmation email's language from Stripe's locale and the shipping country."""

from __future__ import annotations

import dataclasses
import string

import pytest

from orderpipe.email.texts import TEXTS, pick_language

REQUIRED = {"en", "fi", "sv", "da", "nb", "de", "fr", "es", "it", "nl"}


@pytest.mark.parametrize(
    ("locale", "country", "expected"),
    [
        ("fi", "SE", "fi"),  # an explicit locale wins over the country
        ("sv", "FI", "sv"),
        ("nb", None, "nb"),
        ("no", None, "nb"),  # Stripe's Norwegian
        ("nn", "NO", "nb"),
        ("da", None, "da"),
        ("de", "AT", "de"),
        ("fr-CA", "CA", "fr"),  # full tag unknown -> base language
        ("fr_FR", None, "fr"),
        ("es-419", "MX", "es"),
        ("pt-BR", "BR", "pt"),
        ("IT", None, "it"),
        ("nl", "BE", "nl"),
        ("en-GB", "FI", "en"),
        ("ja", "FI", "en"),  # explicit but unsupported: English, not the country's language
        ("zh-HK", None, "en"),
        ("auto", "FI", "fi"),  # auto -> the shipping country's main language
        ("auto", "AX", "sv"),
        ("auto", "NO", "nb"),
        ("auto", "CH", "de"),
        (None, "ES", "es"),
        (None, "de", "de"),
        ("", "DK", "da"),
        (None, "US", "en"),
        ("auto", None, "en"),
        (None, None, "en"),
    ],
)
def test_pick_language(locale: str | None, country: str | None, expected: str) -> None:
    assert pick_language(locale, country) == expected


def test_required_languages_are_complete_and_distinct() -> None:
    assert REQUIRED <= set(TEXTS)
    fields = [f.name for f in dataclasses.fields(TEXTS["en"])]
    for lang, texts in TEXTS.items():
        for name in fields:
            assert getattr(texts, name).strip(), f"{lang}.{name} is empty"
    subjects = {texts.subject for texts in TEXTS.values()}
    assert len(subjects) == len(TEXTS)


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("lang", sorted(TEXTS))
def test_placeholders_match_english(lang: str) -> None:
    for f in dataclasses.fields(TEXTS["en"]):
        assert _placeholders(getattr(TEXTS[lang], f.name)) == _placeholders(getattr(TEXTS["en"], f.name)), (
            f"{lang}.{f.name}"
        )
