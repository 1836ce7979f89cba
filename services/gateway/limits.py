"""Limits on register and login attempts, per user name and per client address.

A password guesser aims many attempts at one name; a credential stuffer tries many names
from one address. Each key (``login`` or ``register``, name or address) has a bucket of
``limit`` attempts that refills at ``limit / window_s`` per second; an attempt takes one
token from the name's bucket and one from the address's, and is refused (before any
password is hashed) when either is empty, with the seconds until one is back.

The buckets live in the gateway's memory: each gateway instance counts on its own, so N
instances behind a balancer allow up to N times the limit. The number of keys is bounded
(least recently seen forgotten first), so made-up names cannot grow it without end.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from services.gateway.settings import AttemptLimits


@dataclass
class _Bucket:
    tokens: float
    at: float


class TooManyAttempts(Exception):
    """An attempt over a limit; ``retry_after_s`` says when the next one is allowed."""

    def __init__(self, kind: str, retry_after_s: int) -> None:
        super().__init__(f"too many attempts for this {kind}; retry in {retry_after_s} s")
        self.kind = kind
        self.retry_after_s = retry_after_s


class AttemptLimiter:
    """Token buckets per action, name and client address (see the module docstring)."""

    def __init__(self, limits: AttemptLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: OrderedDict[tuple[str, str, str], _Bucket] = OrderedDict()

    def _bucket(self, key: tuple[str, str, str], limit: int, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(limit), now)
            while len(self._buckets) > self._limits.max_tracked:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            rate = limit / self._limits.window_s
            bucket.tokens = min(float(limit), bucket.tokens + (now - bucket.at) * rate)
            bucket.at = now
        return bucket

    def check(self, action: str, name: str, address: str | None) -> None:
        """Takes one attempt of ``action`` for ``name`` from ``address``.

        Args:
            action: ``login`` or ``register`` (counted apart).
            name: The user name the attempt is for (compared case-insensitively).
            address: The client's address as its transport saw it; None when unknown
                (then only the name is limited).

        Raises:
            TooManyAttempts: A bucket is empty; nothing was taken from either.
        """
        now = self._clock()
        limits = self._limits
        wanted = [("name", name.casefold(), limits.per_name)]
        if address:
            wanted.append(("address", address, limits.per_address))
        buckets = [
            (kind, limit, self._bucket((action, kind, key), limit, now))
            for kind, key, limit in wanted
        ]
        empty = [(kind, limit, b) for kind, limit, b in buckets if b.tokens < 1.0]
        if empty:
            waits = [((1.0 - b.tokens) * limits.window_s / limit, kind) for kind, limit, b in empty]
            wait_s, kind = max(waits)
            raise TooManyAttempts(kind, max(1, math.ceil(wait_s)))
        for _, _, bucket in buckets:
            bucket.tokens -= 1.0


def peer_host(peer: str | None) -> str | None:
    """The host part of a gRPC peer string (``ipv4:10.0.0.7:5123``, ``ipv6:[::1]:5123``,
    ``unix:/path``), the address the limiter counts; None when there is none."""
    if not peer:
        return None
    scheme, _, rest = unquote(peer).partition(":")
    if scheme == "ipv6" and rest.startswith("["):
        return rest[1:].split("]", 1)[0] or None
    if scheme == "ipv4":
        return rest.rsplit(":", 1)[0] or None
    return rest or None
