"""Credential stripping for every URL the capture records: manifests are committed, secrets must not be."""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def strip_credentials(url: str) -> str:
    """Drop ``user:password@`` (and a bare token user) from a URL, keeping everything else as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    if userinfo == "git":  # PEP 610: the conventional ssh user is not a secret and the URL needs it
        return url
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
