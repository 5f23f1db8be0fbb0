"""What the health client and the poller share: endpoints, failure codes, the done callback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from cdnops import __version__
from cdnops.model import PollFailure

# (PollFailure, body when OK, detail when not); called exactly once per `get`.
Done = Callable[[int, bytes | None, str], None]

OK = int(PollFailure.OK)
TIMEOUT = int(PollFailure.TIMEOUT)
REFUSED = int(PollFailure.REFUSED)
CONNECTION = int(PollFailure.CONNECTION)
HTTP_STATUS = int(PollFailure.HTTP_STATUS)
TOO_LARGE = int(PollFailure.TOO_LARGE)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One GET target: where to connect and the request bytes, built once per appliance."""

    host: str
    port: int
    tls: bool
    request: bytes
    url: str
    key: tuple[str, int, bool]  # the connection pool this endpoint uses


def endpoint(url: str, accept: str = "application/json") -> Endpoint:
    """Build the GET for an absolute http(s) URL; raises ValueError if it cannot be polled."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an absolute http(s) URL: {url!r}")
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    netloc = parts.netloc.rpartition("@")[2]
    head = (
        f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nUser-Agent: cdnops/{__version__}\r\n"
        f"Accept: {accept}\r\n\r\n"
    )
    try:
        request = head.encode("ascii")
    except UnicodeEncodeError:
        raise ValueError(f"URL is not ASCII (percent-encode it): {url!r}") from None
    return Endpoint(parts.hostname, port, tls, request, url, (parts.hostname, port, tls))
