"""A render's end, POSTed to its webhook_url: signed (X-Raypipe-Signature, an HMAC-SHA256 of the
raw body), with a delivery id (X-Raypipe-Delivery) that stays the same across the tries, so a
receiver drops a duplicate; retried with backoff; the URL checked again before each try (DNS
may answer otherwise than at submission), and a redirect never followed."""
from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

from raypipe.serve.guard import Refused, check_url, signature

log = logging.getLogger("raypipe")
TIMEOUT_S = 10.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is the receiver's answer, not a place to go (it could point at a private address)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Webhooks:
    def __init__(self, secret: str, allowed_hosts: list[str], tries: int, backoff_s: float):
        self.secret, self.allowed_hosts, self.tries, self.backoff_s = secret, allowed_hosts, tries, backoff_s
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="webhook")
        self._opener = urllib.request.build_opener(_NoRedirect())
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
                check_url(url, "webhook_url", self.allowed_hosts)
                request = urllib.request.Request(url, data=body, headers=headers, method="POST")
                with self._opener.open(request, timeout=TIMEOUT_S) as answer:
                    if 200 <= answer.status < 300:
                        self.delivered.append(delivery)
                        return
            except Refused as e:
                log.warning("webhook %s refused: %s", delivery, e)
                return
            except (OSError, urllib.error.URLError) as e:  # HTTPError too: a 4xx/5xx or a redirect
                log.info("webhook %s try %d of %d failed: %s", delivery, attempt + 1, self.tries, e)
        log.warning("webhook %s to %s: not delivered after %d tries", delivery, url, self.tries)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
