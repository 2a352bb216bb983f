"""Shared HTTP plumbing for remote embedders: bounded retries on 429/5xx and errors as EmbeddingError."""

from __future__ import annotations

import time
from typing import Any

import httpx

from ..errors import EmbeddingError

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def post_json(
    client: httpx.Client, url: str, payload: dict[str, Any], *, retries: int = 3, backoff: float = 0.5
) -> Any:
    """POST ``payload``; retry transient failures ``retries`` times with exponential backoff; return JSON."""
    last: str = ""
    for attempt in range(retries + 1):
        try:
            response = client.post(url, json=payload)
        except httpx.TransportError as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if response.status_code < 400:
                try:
                    return response.json()
                except ValueError as exc:
                    raise EmbeddingError(f"{url} returned non-JSON", raw_output=response.text[:500]) from exc
            last = f"HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code not in RETRY_STATUS:
                break
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    raise EmbeddingError(f"embedding request to {url} failed: {last}", url=url)
