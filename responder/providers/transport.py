"""The only module that imports httpx: HTTP calls with every failure turned into ours."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from responder.providers.base import ConnectionFailed, Throttled

DEFAULT_TIMEOUT = 10.0


class _UrlRedaction(logging.Filter):
    """httpx logs each request's URL at INFO, and MasSMS's GET queries carry its api_id, user
    and password: the line keeps the URL without its query and user info."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                arg.copy_with(query=None, userinfo=b"") if isinstance(arg, httpx.URL) else arg
                for arg in record.args
            )
        return True


URL_REDACTION = _UrlRedaction()


@dataclass(frozen=True)
class HttpRequest:
    method: str  # GET or POST
    path: str  # appended to the provider's base URL
    params: Mapping[str, str] = field(default_factory=dict)  # query string for GET, form for POST


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: str


class HttpTransport:
    """One pooled client per provider; credentials are never put into error messages."""

    def __init__(
        self,
        base_url: str,
        name: str,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = 8,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        logging.getLogger("httpx").addFilter(URL_REDACTION)  # once: filters are a set
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections),
            headers={"User-Agent": "responder"},
        )

    async def call(self, request: HttpRequest) -> HttpResponse:
        url = f"{self.base_url}/{request.path.lstrip('/')}"
        failure = None
        try:
            if request.method == "POST":
                response = await self._client.post(url, data=dict(request.params))
            else:
                response = await self._client.get(url, params=dict(request.params))
        except httpx.TimeoutException as err:
            failure = f"no answer in time ({type(err).__name__})"
        except httpx.HTTPError as err:
            # str(err) can carry the URL with credentials in its query: never include it.
            failure = type(err).__name__
        if failure is not None:
            # Raised outside the except block: `from None` would still keep the httpx error as
            # __context__, and its `.request` holds the URL and form body with the password.
            raise ConnectionFailed(f"{self.name}: {failure}")
        if response.status_code == 429:
            raise Throttled(f"{self.name}: HTTP 429, too many requests", code="429")
        # Providers in the wild answer in Latin-1 now and then; never fail on decoding.
        try:
            body = response.content.decode(response.encoding or "utf-8")
        except (UnicodeDecodeError, LookupError):
            body = response.content.decode("latin-1")
        return HttpResponse(response.status_code, body)

    async def aclose(self) -> None:
        await self._client.aclose()
