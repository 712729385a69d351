"""ORDERPIPE_RATE_LIMITS: vendor rate limits other than the defaults, checked at start-up."""

from __future__ import annotations

import pytest

from orderpipe.rate_limits import RATE_LIMITS, parse_overrides
from orderpipe.settings import Settings, SettingsError, load_settings


def test_overrides_in_per_second_and_per_minute_hold_six_seconds_of_burst() -> None:
    assert parse_overrides("zoho-api=300/min, airtable-api=10/s") == {"zoho-api": (30, 5.0),
                                                                       "airtable-api": (60, 10.0)}
    assert parse_overrides("telegram-api=0.1/s") == {"telegram-api": (1, 0.1)}
    assert parse_overrides("") == {} and parse_overrides(" , ") == {}


@pytest.mark.parametrize("text", ["zoho=5/s", "zoho-api=5", "zoho-api=5/h", "zoho-api=x/s", "zoho-api=0/s",
                                  "zoho-api=-1/min"])
def test_a_typo_is_an_error_naming_the_item(text: str) -> None:
    with pytest.raises(ValueError, match="zoho"):
        parse_overrides(text)


def test_the_setting_is_checked_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERPIPE_RATE_LIMITS", "zoho-api=5/hour")
    with pytest.raises((SettingsError, ValueError), match="ORDERPIPE_RATE_LIMITS|orderpipe_rate_limits"):
        load_settings()
    monkeypatch.setenv("ORDERPIPE_RATE_LIMITS", "zoho-api=5/s")
    assert load_settings().orderpipe_rate_limits == "zoho-api=5/s"
    assert set(parse_overrides(Settings.model_fields["orderpipe_rate_limits"].default)) <= set(RATE_LIMITS)
