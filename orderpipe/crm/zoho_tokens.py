"""Zoho OAuth access tokens: one cached token for every process, refreshed by one at a time.

Zoho throttles token minting far harder than API calls (10 access tokens per refresh token
per 10 minutes, then a block for the rest of the window; at most 10 live tokens, the 11th
silently revokes the oldest). So the access token lives in the ``vendor_tokens`` table
with its expiry and is refreshed only when it has less than ``margin`` (5 min) left or
Zoho rejected it. The refresh runs under a row lock: ``SELECT ... FOR UPDATE`` on
Postgres; on SQLite every transaction already starts with ``BEGIN IMMEDIATE`` (see
``orderpipe.db``), which is the database-wide write lock. Whoever waited on the lock
re-reads the row and uses the token the winner stored: one refresh, not one per worker.

Neither the access token nor the client secret or refresh token ever appears in a log
line or an exception message.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from orderpipe.connectors.vendor_http import DEFAULT_TIMEOUT, make_client, raise_for_vendor, retry_after_seconds
from orderpipe.db import aware, insert_ignore, session_scope
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import Settings
from orderpipe.tables import VendorToken

log = logging.getLogger(__name__)

TOKEN_PATH = "/oauth/v2/token"
REFRESH_MARGIN = timedelta(minutes=5)
DEFAULT_LIFETIME = 3600  # seconds; Zoho's documented expires_in
# Zoho blocks token creation for the rest of a 10-minute window once the limit is hit; how
# much of the window is left is not told, so the safe hint is the whole window.
THROTTLE_WAIT = 600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ZohoTokens:
    """Hands out a valid Zoho access token, refreshing it (rarely) through the database lock."""

    def __init__(self, settings: Settings, engine: Engine, *, clock: Callable[[], datetime] = _utcnow,
                 timeout: httpx.Timeout | float = DEFAULT_TIMEOUT, margin: timedelta = REFRESH_MARGIN) -> None:
        missing = [name for name, value in (("ZOHO_CLIENT_ID", settings.zoho_client_id),
                                            ("ZOHO_CLIENT_SECRET", settings.zoho_client_secret),
                                            ("ZOHO_REFRESH_TOKEN", settings.zoho_refresh_token)) if not value]
        if missing:
            raise PermanentError("zoho: missing " + ", ".join(missing))
        self._client_id = str(settings.zoho_client_id)
        self._client_secret = str(settings.zoho_client_secret)
        self._refresh_token = str(settings.zoho_refresh_token)
        self._api_host = urlsplit(settings.zoho_api_base).hostname
        self._engine = engine
        self._clock = clock
        self._margin = margin
        self._http = make_client(settings.zoho_accounts_base, timeout=timeout)
        # One row per (accounts host, client, refresh token); a digest, so the row names no secret.
        digest = hashlib.sha256(
            "\n".join((settings.zoho_accounts_base.rstrip("/"), self._client_id, self._refresh_token)).encode()
        ).hexdigest()[:32]
        self.cache_key = f"zoho:{digest}"
        self._memo: tuple[str, datetime] | None = None
        self._lock = threading.Lock()  # one refresh at a time among this instance's threads, too

    def close(self) -> None:
        self._http.close()

    def access_token(self, *, rejected: str | None = None) -> str:
        """A token with more than ``margin`` left. ``rejected``: the token Zoho just refused."""
        try:
            return self._access_token(rejected)
        except SQLAlchemyError as exc:
            # No driver text: it can quote statement parameters, i.e. the token itself.
            raise TransientError(f"zoho: token cache in orderpipe's database unavailable ({type(exc).__name__})"
                                 ) from None

    def _access_token(self, rejected: str | None) -> str:
        with self._lock:
            now = self._clock()
            if rejected is None:
                if self._memo and self._fresh(*self._memo, now=now):
                    return self._memo[0]
                with Session(self._engine) as session:
                    row = session.get(VendorToken, self.cache_key)
                    if row is not None and row.access_token and self._fresh(row.access_token,
                                                                            aware(row.expires_at), now=now):
                        self._memo = (row.access_token, aware(row.expires_at))  # type: ignore[assignment]
                        return row.access_token
            token, expires_at = self._refresh_under_lock(rejected)
            self._memo = (token, expires_at)
            return token

    # ---- internals --------------------------------------------------------------------------
    def _fresh(self, token: str, expires_at: datetime | None, *, now: datetime) -> bool:
        return bool(token) and expires_at is not None and expires_at - now > self._margin

    def _refresh_under_lock(self, rejected: str | None) -> tuple[str, datetime]:
        with session_scope(self._engine) as session:
            # The placeholder row makes sure there is a row to lock the first time round.
            insert_ignore(session, VendorToken, {"name": self.cache_key, "access_token": "",
                                                 "expires_at": _EPOCH, "updated_at": self._clock()})
            row = session.exec(
                select(VendorToken).where(VendorToken.name == self.cache_key).with_for_update()
            ).one()
            now = self._clock()
            expires_at = aware(row.expires_at)
            if row.access_token != rejected and self._fresh(row.access_token, expires_at, now=now):
                return row.access_token, expires_at  # type: ignore[return-value]
            token, lifetime = self._request_token()
            expires_at = self._clock() + timedelta(seconds=lifetime)
            row.access_token = token
            row.expires_at = expires_at
            row.updated_at = self._clock()
            session.add(row)
        log.info("zoho: access token refreshed (valid for %d s)", lifetime)
        return token, expires_at

    def _request_token(self) -> tuple[str, int]:
        # Form body, as the official SDK sends it: the docs' query-string form would put the
        # client secret and refresh token into URLs (proxy and server logs).
        form = {"grant_type": "refresh_token", "client_id": self._client_id,
                "client_secret": self._client_secret, "refresh_token": self._refresh_token}
        where = f"zoho POST {TOKEN_PATH}"
        try:
            response = self._http.post(TOKEN_PATH, data=form)
        except httpx.TimeoutException as exc:
            raise TransientError(f"{where}: timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise TransientError(f"{where}: connection failed ({type(exc).__name__})") from None
        body = _json_object(response)
        # A refresh grant is believed not to return a new refresh token [U]; if one came, it is
        # ignored: ZOHO_REFRESH_TOKEN stays the credential and nothing secret is written to disk.
        token = body.get("access_token")
        if response.is_success and isinstance(token, str) and token:
            self._check_api_domain(body.get("api_domain"))
            return token, _lifetime(body)
        # The SDK judges success only by access_token; the HTTP status of an error body is
        # unconfirmed (commonly 200), so the body's `error` is read before the status.
        error = body.get("error")
        if error:
            description = self._scrub(str(body.get("error_description") or ""))[:200]
            code = self._scrub(str(error))[:100]
            if _is_throttle(code, description) or response.status_code == 429:
                raise TransientError(
                    f"{where}: Zoho blocked token creation ({code}: {description or 'too many requests'}); "
                    "waiting for the 10-minute window",
                    retry_after=max(THROTTLE_WAIT, retry_after_seconds(response) or 0.0),
                )
            if response.status_code >= 500:
                raise TransientError(f"{where} -> HTTP {response.status_code}: {code}",
                                     retry_after=retry_after_seconds(response))
            raise PermanentError(
                f"{where}: Zoho refused the refresh token grant ({code}); check ZOHO_CLIENT_ID, "
                "ZOHO_CLIENT_SECRET, ZOHO_REFRESH_TOKEN and that they belong to the EU data centre"
            )
        raise_for_vendor("zoho", response)
        raise PermanentError(f"{where}: answer has neither access_token nor error")

    def _check_api_domain(self, api_domain: Any) -> None:
        # ZOHO_API_BASE still wins (stand-ins, sandboxes); a different data centre is logged.
        if isinstance(api_domain, str) and api_domain:
            host = urlsplit(api_domain).hostname
            if host and self._api_host and host != self._api_host:
                log.warning("zoho: token is for API host %s but ZOHO_API_BASE points at %s", host, self._api_host)

    def _scrub(self, text: str) -> str:
        for secret in (self._client_secret, self._refresh_token):
            text = text.replace(secret, "***")
        return text


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _lifetime(body: dict[str, Any]) -> int:
    """Seconds the token lives. Legacy answers carry ``expires_in_sec``; then ``expires_in`` is ms."""
    for key in ("expires_in_sec", "expires_in"):
        value = body.get(key)
        if value is None:
            continue
        try:
            seconds = int(value)
        except (TypeError, ValueError):
            continue
        if seconds > 0:
            return seconds
    return DEFAULT_LIFETIME


def _is_throttle(code: str, description: str) -> bool:
    # "Access Denied" is unconfirmed [U]; the description prefix is confirmed. Either counts.
    text = f"{code} {description}".lower()
    return "access denied" in text or "too many requests" in text
