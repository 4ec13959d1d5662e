"""What a request may ask for. Requests come from the network: their sources, webhook URLs,
overrides and sizes are checked before anything is written or read, each refusal one line
naming the field (the CLI's), with the HTTP status it answers."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from fractions import Fraction
from urllib.parse import urlsplit

from omegaconf import DictConfig

from raypipe.batch.videos import _allowed as under_roots, job_reads
from raypipe.errors import JobError, RaypipeError

# Overrides a request may give: its video's own. The rest (detector, ray, storage, cache,
# serve) are the service's, fixed when it starts.
REQUEST_SECTIONS = ("render.", "job.")
# The cloud metadata addresses that are not link-local (AWS's IPv6 one, Alibaba's).
METADATA = {ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}


class Refused(RaypipeError):
    """A request the service will not take: `status` is the HTTP answer (400, 413, 422, 429)."""

    def __init__(self, status: int, where: str, reason: str):
        super().__init__(reason, where)
        self.status = status


def signature(secret: str, body: bytes) -> str:
    """X-Raypipe-Signature's value: `sha256=` and the HMAC-SHA256 of the raw body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str) -> bool:
    """What a receiver does with the header (constant time)."""
    return hmac.compare_digest(signature(secret, body), header or "")


def public_address(address: str) -> bool:
    """Whether an IP address is on the public internet: not loopback, private, link-local
    (169.254.169.254, the metadata service, is one), multicast, reserved, or a metadata address."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast and ip not in METADATA


def check_url(url: str, where: str, allowed_hosts: list[str], resolve=socket.getaddrinfo) -> list[str]:
    """An http(s) URL whose host resolves to public addresses only, or is in `allowed_hosts`:
    the addresses checked (none for an allowed host). Checked where a URL is given and again
    where it is used, which then connects to an address checked (DNS may answer otherwise a
    moment later: a host that rebinds to a private address gains nothing)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(422, where, f"must be an http(s) URL with a host (got {url!r})")
    host = parts.hostname
    if host in allowed_hosts:
        return []
    try:
        addresses = {info[4][0] for info in resolve(host, parts.port or 443, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError) as e:
        raise Refused(422, where, f"the host {host!r} does not resolve ({e})") from None
    private = sorted(a for a in addresses if not public_address(a))
    if private:
        raise Refused(422, where, f"{host} is a loopback, private, link-local or metadata address "
                                  f"({', '.join(private)}); serve.allowed_hosts lists the ones allowed")
    return sorted(addresses)


def check_sources(cfg: DictConfig, allowed_roots: list[str], allowed_hosts: list[str]) -> None:
    """What a job reads (job_reads: sources, layers, sound, font files) only from
    serve.allowed_roots and sample:; a URL naming a host (http, https) only under an allowed
    root, and never on a private address unless allowed."""
    shown = ", ".join(allowed_roots) or "none: only sample:"
    for where, uri in job_reads(cfg.job):
        if uri.startswith(("http://", "https://")):
            if not any(uri.startswith(r.rstrip("/") + "/") for r in allowed_roots):
                raise Refused(422, where, f"{uri} is outside serve.allowed_roots ({shown})")
            check_url(uri, where, allowed_hosts)
        elif not under_roots(uri, allowed_roots):
            raise Refused(422, where, f"{uri} is outside serve.allowed_roots ({shown})")


def check_overrides(overrides) -> list[str]:
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise Refused(422, "overrides", "must be a list of strings, as on the command line (\"render.width=640\")")
    for o in overrides:
        key = o.partition("=")[0].lstrip("+~")
        if not key.startswith(REQUEST_SECTIONS):
            raise Refused(422, "overrides", f"{key}: a request sets only render.* and job.* keys; "
                                            "the rest are the service's")
    return overrides


def check_limits(cfg: DictConfig, limits: DictConfig) -> None:
    """The limits that the config alone shows (a video's duration is checked again once planned)."""
    r = cfg.render
    if r.variants:  # the engine's one video per request: its record has one output
        raise Refused(422, "render.variants", "a request renders one video: send a request per variant")
    if r.width * r.height > limits.max_pixels:
        raise Refused(422, "render.width", f"{r.width}x{r.height} is {r.width * r.height} pixels, over "
                                           f"serve.max_pixels ({limits.max_pixels})")
    try:
        fps = float(Fraction(str(r.fps)))
    except (ValueError, ZeroDivisionError):
        raise JobError("render.fps", f"must be a number or a ratio such as 30000/1001 (got {r.fps!r})") from None
    if fps > limits.max_fps:
        raise Refused(422, "render.fps", f"{fps:g} is over serve.max_fps ({limits.max_fps:g})")
    n = len(cfg.job.segments)
    if n > limits.max_segments:
        raise Refused(422, "job.segments", f"{n} segments, over serve.max_segments ({limits.max_segments})")
    check_duration(sum(s.duration or 0.0 for s in cfg.job.segments), limits)


def check_service(s: DictConfig) -> None:
    """The service's own settings that no type says: before anything starts."""
    if not 0 <= s.nice <= 19:
        raise JobError("serve.nice", f"must be 0 to 19, as for nice(1) (got {s.nice})")
    if s.max_in_flight < 1:
        raise JobError("serve.max_in_flight", f"must be >= 1 (got {s.max_in_flight})")


def check_duration(seconds: float, limits: DictConfig) -> None:
    if seconds > limits.max_duration_s:
        raise Refused(422, "job.segments", f"{seconds:g} s of video, over serve.max_duration_s "
                                           f"({limits.max_duration_s:g})")
