"""Start-up errors name the variable; the CLI's exits and durations."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from orderpipe.cli import parse_duration
from orderpipe.settings import SettingsError, load_settings
from tests.conftest import REPO


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "ORDERPIPE_", "DATABASE_URL"))}
    return subprocess.run([sys.executable, "-m", "orderpipe.cli", *args], env={**clean, **env}, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_up_refuses_to_start_without_webhook_secret(tmp_path: Path) -> None:
    r = run_cli("up", env={"ORDERPIPE_DATA_DIR": str(tmp_path), "STRIPE_API_KEY": "sk_test_x"})
    assert r.returncode != 0 and "STRIPE_WEBHOOK_SECRET" in r.stderr and "Traceback" not in r.stderr


def test_malformed_settings_name_the_variable(tmp_path: Path) -> None:
    r = run_cli("status", env={"ORDERPIPE_DATA_DIR": str(tmp_path), "ORDERPIPE_PORT": "eighty"})
    assert r.returncode != 0 and "ORDERPIPE_PORT" in r.stderr and "Traceback" not in r.stderr


def test_status_of_unknown_order_exits_2(tmp_path: Path) -> None:
    r = run_cli("status", "pi_nope", "--json", env={"ORDERPIPE_DATA_DIR": str(tmp_path)})
    assert r.returncode == 2 and "unknown order" in r.stdout


@pytest.mark.parametrize(
    "env, names",
    [
        ({"ORDERPIPE_CRM": "zoho"}, ["ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN"]),
        ({"ORDERPIPE_EMAIL": "carrier-pigeon"}, ["ORDERPIPE_EMAIL"]),
        ({"STRIPE_WEBHOOK_SECRET": "sk_wrong"}, ["STRIPE_WEBHOOK_SECRET"]),
        ({"DATABASE_URL": "mysql://x"}, ["DATABASE_URL"]),
        ({"ORDERPIPE_SELLER_COUNTRY": "Finland"}, ["ORDERPIPE_SELLER_COUNTRY"]),
        # a stray brace in the tracking-URL template: refused at start-up, never after a booking
        ({"ORDERPIPE_TRACKING_URL": "https://track.example/{tracking_number"}, ["ORDERPIPE_TRACKING_URL"]),
        ({"ORDERPIPE_TRACKING_URL": "https://track.example/?id={tracking_number}}"}, ["ORDERPIPE_TRACKING_URL"]),
        ({"ORDERPIPE_TRACKING_URL": "https://track.example/{id}"}, ["ORDERPIPE_TRACKING_URL"]),
        ({"ORDERPIPE_TRACKING_URL": "track.example/{tracking_number}"}, ["ORDERPIPE_TRACKING_URL"]),
    ],
)
def test_settings_errors(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: list[str]) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as info:
        load_settings()
    for name in names:
        assert name in str(info.value)


def test_secret_rotation_and_postgres_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", "whsec_new, whsec_old")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h:5432/db")
    s = load_settings()
    assert s.webhook_secrets == ["whsec_new", "whsec_old"]
    assert s.db_url == "postgresql+psycopg://u@h:5432/db" and s.is_postgres


def test_a_tracking_url_template_with_literal_braces_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORDERPIPE_TRACKING_URL", "https://t.example/{{v2}}/{tracking_number}")
    assert load_settings().orderpipe_tracking_url.format(tracking_number="1") == "https://t.example/{v2}/1"


def test_parse_duration() -> None:
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("2") == timedelta(hours=2)
