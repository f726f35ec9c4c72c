"""What the server tests share: enabling the extension, and ``call``, one request through the server's own loop.

Imported by name into the modules that use pytest-jupyter (``from .server_support import call,
jp_server_config``), so its fixtures apply to those modules only.
"""
from __future__ import annotations

import json

import pytest


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"jupyter_yolosnap": True}}}


@pytest.fixture
def call(jp_fetch, jp_asyncio_loop):
    """``call(METHOD, *url parts, status=..., body=..., raw_body=..., **params)`` -> the JSON reply (None for an
    empty body), after checking the status."""

    def _call(method: str, *parts: str, status: int = 200, body=None, timeout: float = 300,
              headers: dict | None = None, raw_body: str | None = None, **params: str):
        kwargs = {"method": method, "raise_error": False, "request_timeout": timeout, "params": params,
                  "headers": headers}
        if raw_body is not None:
            kwargs["body"] = raw_body
        elif body is not None or method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = json.dumps(body or {})

        async def fetch():  # the fetch's future is made inside the running loop, whatever loop is current
            return await jp_fetch(*parts, **kwargs)

        response = jp_asyncio_loop.run_until_complete(fetch())
        text = response.body.decode() if response.body else ""
        assert response.code == status, f"{method} {'/'.join(parts)}: {response.code} {text}"
        return json.loads(text) if text else None

    return _call
