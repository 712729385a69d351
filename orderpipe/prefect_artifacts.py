"""The Prefect server's artifacts, read and rewritten over its REST API (``orderpipe forget``
and ``purge`` use it to take the personal data out of the order artifacts).

Prefect 3.8.8's API (``prefect/server/api/artifacts.py``):

- ``POST /artifacts/filter`` with ``{"artifacts": {"key": {"any_": [...]}}}`` (or ``like_``:
  keys containing the text), ``sort`` and ``offset`` (pages of the server's limit, 200):
  every *version* of those keys (each ``create_markdown_artifact`` with an existing key adds
  one), not only the latest.
- ``PATCH /artifacts/{id}`` with an ``ArtifactUpdate`` (``data``, ``description``,
  ``metadata_``; only the fields sent change): 204. It updates the version and, when it is the
  latest of its key, the key's collection row (what the UI's Artifacts page shows) too.

One ``httpx.Client`` against ``PREFECT_API_URL`` (default: the server ``orderpipe up``
starts), with ``PREFECT_API_AUTH_STRING`` (HTTP Basic) or else ``PREFECT_API_KEY`` (Bearer),
as Prefect's own client sends them. Failures are ``TransientError`` (no connection, 429,
5xx; tried three times here) or ``PermanentError`` (other 4xx, e.g. a missing key).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from orderpipe.connectors.vendor_http import call, make_client
from orderpipe.errors import TransientError
from orderpipe.prefect_env import api_url
from orderpipe.settings import Settings

KEYS_PER_REQUEST = 100
ATTEMPTS = 3
VENDOR = "Prefect API"


@dataclass(frozen=True)
class ArtifactVersion:
    """One version of an artifact as the server has it."""

    id: str
    key: str | None
    type: str | None
    data: Any  # markdown: the text; table: a JSON string of the rows
    created: datetime

    @classmethod
    def from_api(cls, item: dict[str, Any]) -> ArtifactVersion:
        return cls(id=str(item["id"]), key=item.get("key"), type=item.get("type"), data=item.get("data"),
                   created=datetime.fromisoformat(str(item["created"]).replace("Z", "+00:00")))


def auth_headers(settings: Settings) -> dict[str, str]:
    """What Prefect's client sends: Basic for an auth string, else Bearer for an API key."""
    if settings.prefect_api_auth_string:
        token = base64.b64encode(settings.prefect_api_auth_string.encode()).decode()
        return {"Authorization": f"Basic {token}"}
    if settings.prefect_api_key:
        return {"Authorization": f"Bearer {settings.prefect_api_key}"}
    return {}


class PrefectArtifacts:
    """Read every version of some artifact keys; replace a version's data."""

    def __init__(self, client: httpx.Client, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self._client = client
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 10.0) -> PrefectArtifacts:
        return cls(make_client(api_url(settings), headers=auth_headers(settings),
                               timeout=httpx.Timeout(timeout, connect=5.0)))

    @property
    def url(self) -> str:
        return str(self._client.base_url)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrefectArtifacts:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return call(VENDOR, self._client, method, path, **kwargs)
            except TransientError as exc:
                if attempt == ATTEMPTS:
                    raise
                self._sleep(exc.retry_after if exc.retry_after is not None else float(attempt))
        raise AssertionError("unreachable")

    def _filter(self, key_filter: dict[str, Any]) -> Iterator[ArtifactVersion]:
        offset = 0
        while True:
            # No limit sent: the server's page size (PREFECT_SERVER_API_DEFAULT_LIMIT, 200) is
            # also its maximum. By creation time: an artifact created meanwhile only pushes the
            # rest one place on (one is seen twice, none skipped); a rewrite changes no creation time.
            page = self._call("POST", "/artifacts/filter", json={
                "artifacts": {"key": key_filter}, "sort": "CREATED_DESC", "offset": offset}).json()
            if not page:
                return
            for item in page:
                yield ArtifactVersion.from_api(item)
            offset += len(page)

    def versions(self, keys: Sequence[str]) -> Iterator[ArtifactVersion]:
        """Every version of every key in ``keys``."""
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), KEYS_PER_REQUEST):
            yield from self._filter({"any_": unique[start:start + KEYS_PER_REQUEST]})

    def versions_containing(self, text: str) -> Iterator[ArtifactVersion]:
        """Every version of every key containing ``text`` (the server's ``like_`` is
        ``ILIKE '%<text>%'``): the caller checks the keys it wants."""
        yield from self._filter({"like_": text})

    def set_data(self, artifact_id: str, data: Any) -> None:
        """Replace one version's data (its key, type, description and created time stay)."""
        self._call("PATCH", f"/artifacts/{artifact_id}", json={"data": data})
