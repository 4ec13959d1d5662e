"""A render's end, POSTed to its webhook_url: signed (X-Raypipe-Signature, an HMAC-SHA256 of the
raw body), with a delivery id (X-Raypipe-Delivery) that stays the same across the tries, so a
receiver drops a duplicate; retried with backoff; the URL checked again before each try and the
connection made to an address that check passed (DNS may answer otherwise than at submission,
or between the check and the connection), and a redirect never followed."""
from __future__ import annotations

import http.client
import json
import logging
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from raypipe.serve.guard import Refused, check_url, signature

log = logging.getLogger("raypipe")
TIMEOUT_S = 10.0


class _Pinned(http.client.HTTPConnection):
    """HTTP to `address` (one that check_url passed), the URL's host in the Host header."""

    def __init__(self, host: str, port: int | None, address: str | None, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address or self.host, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    """HTTPS to `address`, the certificate checked against the URL's host (SNI too)."""

    def __init__(self, host: str, port: int | None, address: str | None, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.address or self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _post(url: str, address: str | None, body: bytes, headers: dict) -> int:
    """The answer's status. http.client follows no redirect: a 3xx is the answer."""
    parts = urlsplit(url)
    kind = _PinnedTLS if parts.scheme == "https" else _Pinned
    conn = kind(parts.hostname, parts.port, address, TIMEOUT_S)
    try:
        conn.request("POST", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), body, headers)
        return conn.getresponse().status
    finally:
        conn.close()


class Webhooks:
    def __init__(self, secret: str, allowed_hosts: list[str], tries: int, backoff_s: float):
        self.secret, self.allowed_hosts, self.tries, self.backoff_s = secret, allowed_hosts, tries, backoff_s
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="webhook")
        self.delivered: list[str] = []  # delivery ids, for /v1/stats and the tests

    def deliver(self, url: str, obj: dict) -> None:
        self._pool.submit(self._send, url, json.dumps(obj, sort_keys=True).encode(), uuid.uuid4().hex)

    def _send(self, url: str, body: bytes, delivery: str) -> None:
        headers = {"Content-Type": "application/json", "X-Raypipe-Signature": signature(self.secret, body),
                   "X-Raypipe-Delivery": delivery, "User-Agent": "raypipe-webhook"}
        for attempt in range(self.tries):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                addresses = check_url(url, "webhook_url", self.allowed_hosts)
                status = _post(url, addresses[0] if addresses else None, body, headers)
                if 200 <= status < 300:
                    self.delivered.append(delivery)
                    return
                log.info("webhook %s try %d of %d: answered %d", delivery, attempt + 1, self.tries, status)
            except Refused as e:
                log.warning("webhook %s refused: %s", delivery, e)
                return
            except (OSError, http.client.HTTPException) as e:
                log.info("webhook %s try %d of %d failed: %s", delivery, attempt + 1, self.tries, e)
        log.warning("webhook %s to %s: not delivered after %d tries", delivery, url, self.tries)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
