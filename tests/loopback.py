"""httpx as the tests use it, for plain HTTP to servers on 127.0.0.1. httpx builds a TLS
context for every client it makes, whether it will speak TLS or not, parsing the CA bundle
again: about 20 ms of CPU each, more than many a whole test. These make every client with one
context, made once; the requests are httpx's own."""

from __future__ import annotations

from typing import Any

import httpx

TLS = httpx.create_ssl_context()


def Client(**options: Any) -> httpx.Client:
    return httpx.Client(verify=TLS, **options)


def AsyncClient(**options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=TLS, **options)


def request(method: str, url: str, **options: Any) -> httpx.Response:
    return httpx.request(method, url, verify=TLS, **options)


def get(url: str, **options: Any) -> httpx.Response:
    return request("GET", url, **options)


def post(url: str, **options: Any) -> httpx.Response:
    return request("POST", url, **options)


def head(url: str, **options: Any) -> httpx.Response:
    return request("HEAD", url, **options)
