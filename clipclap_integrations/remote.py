"""Fetching http(s) URLs with a timeout, a size cap and no scheme other than http(s)."""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .errors import ClipClapInputError

USER_AGENT = "clipclap-integrations (+https://pypi.org/project/clipclap-integrations/)"


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None
    url: str  # after redirects


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise ClipClapInputError(f"the URL redirects to a {scheme or 'relative'}: URL, refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_opener = urllib.request.build_opener(_HttpOnlyRedirects)


def fetch(url: str, *, timeout: float, max_bytes: int) -> Fetched:
    """Download ``url`` whole; give up past ``timeout`` seconds in all or ``max_bytes`` bytes."""
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ClipClapInputError(f"only http and https URLs are fetched, not {scheme}:")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with _opener.open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise ClipClapInputError(
                    f"the URL serves {int(length):,} bytes, over the limit of {max_bytes:,}"
                )
            chunks: list[bytes] = []
            total = 0
            while True:
                if time.monotonic() > deadline:
                    raise ClipClapInputError(f"the download took longer than {timeout:g} s")
                chunk = (
                    response.read1(65536) if hasattr(response, "read1") else response.read(65536)
                )
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise ClipClapInputError(
                        f"the URL serves more than the limit of {max_bytes:,} bytes"
                    )
                chunks.append(chunk)
            return Fetched(
                b"".join(chunks), response.headers.get("Content-Type"), response.geturl()
            )
    except ClipClapInputError:
        raise
    except urllib.error.HTTPError as exc:
        raise ClipClapInputError(f"the URL answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError) or "timed out" in str(reason):
            raise ClipClapInputError(f"the URL did not answer within {timeout:g} s") from None
        raise ClipClapInputError(f"the URL is unreachable ({reason})") from None
    except TimeoutError:
        raise ClipClapInputError(f"the URL did not answer within {timeout:g} s") from None
    except (OSError, ValueError) as exc:
        raise ClipClapInputError(f"the download failed ({exc})") from None
