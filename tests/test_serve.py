"""The render service: its pure parts (signatures, addresses, the store), then its API in this
process through FastAPI's test client, on the engine with the driver's threads."""
import hashlib
import hmac
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from raypipe import media
from raypipe.serve.guard import Refused, check_url, public_address, signature, verify
from raypipe.serve.store import RenderRecord, Store

TINY = ["detector=saliency", "render.width=96", "render.height=54", "render.fps=6", "render.cache=false"]
JOB = {"name": "t", "segments": [{"source": "sample:astronaut", "duration": 1.0},
                                 {"source": "sample:coffee", "duration": 1.0}]}
SECRET = "s3cret"


# --- unit: pure parts -------------------------------------------------------------------------

@pytest.mark.unit
def test_the_signature_is_an_hmac_sha256_of_the_raw_body():
    body = b'{"id": "r_1"}'
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature(SECRET, body) == expected
    assert verify(SECRET, body, expected) and not verify(SECRET, body + b" ", expected)
    assert not verify("other", body, expected)


@pytest.mark.unit
@pytest.mark.parametrize("address, public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
    ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False), ("::1", False),
    ("fe80::1", False), ("fd00:ec2::254", False), ("::ffff:127.0.0.1", False), ("0.0.0.0", False),
    ("224.0.0.1", False), ("100.100.100.200", False)])
def test_only_public_addresses_are_public(address, public):
    assert public_address(address) is public


def resolver(*addresses):
    return lambda host, port, proto=0: [(socket.AF_INET, socket.SOCK_STREAM, proto, "", (a, port))
                                        for a in addresses]


@pytest.mark.unit
def test_a_url_is_refused_when_any_of_its_addresses_is_private_unless_its_host_is_allowed():
    check_url("https://example.com/hook", "webhook_url", [], resolve=resolver("93.184.216.34"))
    with pytest.raises(Refused, match=r"^webhook_url: example.com is a loopback, private, link-local or metadata "
                                      r"address \(10.0.0.5\)"):
        check_url("https://example.com/hook", "webhook_url", [], resolve=resolver("93.184.216.34", "10.0.0.5"))
    with pytest.raises(Refused, match="169.254.169.254"):
        check_url("http://169.254.169.254/latest/meta-data", "webhook_url", [])
    check_url("http://127.0.0.1:9/hook", "webhook_url", ["127.0.0.1"])
    with pytest.raises(Refused, match="must be an http"):
        check_url("file:///etc/passwd", "webhook_url", [])


@pytest.mark.unit
def test_a_webhook_connects_to_the_address_its_check_passed_not_to_what_dns_says_later(receiver):
    from urllib.parse import urlsplit

    from raypipe.serve.webhooks import _post

    port = urlsplit(receiver).port
    # rebind.invalid never resolves: the request reaches the checked address, with the URL's host.
    assert _post(f"http://rebind.invalid:{port}/hook?n=1", "127.0.0.1", b"{}", {"X-Raypipe-Delivery": "d1"}) == 200
    headers, body = Receiver.got[0]
    assert headers["Host"] == f"rebind.invalid:{port}" and headers["X-Raypipe-Delivery"] == "d1" and body == b"{}"


@pytest.mark.unit
def test_the_store_keeps_keys_hashed_and_idempotency_claims_across_a_restart(tmp_path):
    store = Store(str(tmp_path))
    key, secret = store.create_key("ci")
    assert secret not in (tmp_path / "keys.json").read_text()
    assert store.key_of(secret) == key and store.key_of(secret + "x") is None and store.key_of("nope") is None
    assert store.claim(key.id, "k1", b"{}", "r_a") == ("r_a", True)
    store.add(RenderRecord("r_a", key.id, time.time()))
    again = Store(str(tmp_path))
    assert again.claim(key.id, "k1", b"{}", "r_b") == ("r_a", True)
    assert again.claim(key.id, "k1", b"{ }", "r_b") == ("r_a", False)
    assert again.claim("another", "k1", b"{}", "r_c") == ("r_c", True)  # keys are per API key
    assert again.get("r_a").key_id == key.id and again.get("r_a", "another") is None


@pytest.mark.unit
def test_a_record_moves_forward_counting_each_stage():
    record = RenderRecord("r", "", 100.0, status_since=100.0)
    record.move("detecting", 101.0)
    record.move("rendering", 103.5)
    record.move("succeeded", 104.0)
    record.move("failed", 105.0)  # an end is final
    assert record.status == "succeeded" and record.progress == 1.0
    assert record.stages == {"queued": 1.0, "detecting": 2.5, "rendering": 0.5}


@pytest.mark.unit
def test_a_requests_job_merged_into_the_services_config_is_what_composing_it_gives(tmp_path):
    from omegaconf import OmegaConf

    from raypipe.api import config
    from raypipe.errors import ConfigError
    from raypipe.serve.service import RenderService

    service = RenderService([*TINY, f"serve.root={tmp_path}"])
    job = {**JOB, "audio": {"path": "${asset:demo_soundtrack.m4a}"},
           "segments": [{**JOB["segments"][0], "effect": "ken_burns", "caption": {"text": "hi"}}]}
    for fragment in (job, {"job": job}):
        merged = service._config({"job": fragment}, "r_1")
        assert OmegaConf.to_yaml(merged, resolve=True) == OmegaConf.to_yaml(config(fragment, service.overrides), resolve=True)
    for bad, message in ((dict(JOB, segments=[{"source": "sample:coffee", "duration": "abc"}]),
                          "job.segments[0].duration: Value 'abc' of type 'str' could not be converted to Float"),
                         (dict(JOB, segmnts=[]), "job.segmnts: Key 'segmnts' not in 'JobCfg'; did you mean 'segments'?")):
        with pytest.raises(ConfigError) as merged_error:
            service._config({"job": bad}, "r_1")
        with pytest.raises(ConfigError) as composed_error:
            config(bad, TINY)
        assert str(merged_error.value) == str(composed_error.value) == message
    service.engine.close()


@pytest.mark.unit
def test_templates_come_from_conf_job_and_from_the_services_config_dir(tmp_path):
    from raypipe.__main__ import _config_dir_as_searchpath
    from raypipe.serve.service import RenderService

    (tmp_path / "mine" / "job").mkdir(parents=True)
    (tmp_path / "mine" / "job" / "open_house.yaml").write_text(
        "# @package _global_\njob:\n  name: open_house\n  segments:\n    - {source: 'sample:coffee', duration: 1}\n"
        "    - {source: 'sample:${row:photo}', duration: 1}\n")
    service = RenderService([*TINY, f"serve.root={tmp_path / 'serve'}",
                             *_config_dir_as_searchpath(["--config-dir", str(tmp_path / "mine")])])
    try:
        mine = service._config({"template": "open_house", "row": {"photo": "astronaut"}}, "r_1")
        assert mine.job.name == "open_house" and mine.job.segments[1].source == "sample:astronaut"
        assert service._config({"template": "listing", "row": {"address": "1 Elm", "price": "$1",
                                                               "photos": ["sample:coffee"]}}, "r_2").job.segments
        with pytest.raises(Refused) as e:
            service._config({"template": "nowhere", "row": {}}, "r_3")
        assert e.value.status == 422 and str(tmp_path / "mine" / "job") in str(e.value)
    finally:
        service.engine.close()


# --- render: the API in this process ---------------------------------------------------------------

class Receiver(BaseHTTPRequestHandler):
    """A webhook receiver on 127.0.0.1: keeps what it was sent."""

    got: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.got.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    Receiver.got = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def make_service(root, *extra):
    from raypipe.engine.threads import ThreadExecutor
    from raypipe.serve.service import RenderService

    overrides = [*TINY, f"serve.root={root}", "serve.allowed_hosts=[127.0.0.1]", f"serve.webhook_secret={SECRET}",
                 "serve.webhook_backoff_s=0.1", *extra]
    return RenderService(overrides, executor=ThreadExecutor(2))


@pytest.fixture
def api(tmp_path):
    from fastapi.testclient import TestClient

    from raypipe.serve.app import make_app

    service = make_service(tmp_path / "serve")
    service.start()
    with TestClient(make_app(service)) as client:
        yield client, service
    service.close()


def wait_end(client, render_id, timeout=300, headers=None):
    t0, seen = time.time(), []
    while time.time() - t0 < timeout:
        obj = client.get(f"/v1/renders/{render_id}", headers=headers).json()
        seen.append(obj["progress"])
        if obj["status"] in ("succeeded", "failed", "cancelled"):
            return obj, seen
        time.sleep(0.2)
    raise AssertionError(f"{render_id} did not end: {obj}")


@pytest.mark.render
def test_a_render_goes_from_202_to_a_video_with_progress_that_never_goes_back(api, receiver, tmp_path):
    client, service = api
    assert client.get("/healthz").json() == {"ok": True} and client.get("/readyz").status_code == 200
    answer = client.post("/v1/renders", json={"job": JOB, "metadata": {"order": 7}, "webhook_url": receiver})
    assert answer.status_code == 202, answer.text
    created = answer.json()
    assert created["status"] == "queued" and created["metadata"] == {"order": 7}
    obj, seen = wait_end(client, created["id"])
    assert obj["status"] == "succeeded", obj
    assert seen == sorted(seen) and obj["progress"] == 1.0
    assert obj["frames"]["done"] == obj["frames"]["total"] == 12 and obj["error"] is None
    assert obj["output"]["size"] > 0 and obj["output"]["duration"] == pytest.approx(2.0)
    assert {"queued", "rendering"} <= set(obj["stages"])
    video = client.get(f"/v1/renders/{created['id']}/video")
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    path = tmp_path / "got.mp4"
    path.write_bytes(video.content)
    assert media.count_frames(str(path)) == 12
    listed = client.get("/v1/renders?status=succeeded").json()
    assert [r["id"] for r in listed["renders"]] == [created["id"]]
    stats = client.get("/v1/stats").json()
    assert stats["renders"] == {"succeeded": 1} and stats["queue"] == 0
    events = client.get(f"/v1/renders/{created['id']}/events").text
    assert events.startswith("event: render\ndata: ") and '"status": "succeeded"' in events
    for _ in range(50):
        if Receiver.got:
            break
        time.sleep(0.1)
    headers, body = Receiver.got[0]
    assert verify(SECRET, body, headers["X-Raypipe-Signature"]) and headers["X-Raypipe-Delivery"]
    assert json.loads(body)["id"] == created["id"] and json.loads(body)["status"] == "succeeded"


@pytest.mark.render
def test_the_renders_yield_the_cpu_to_the_threads_that_answer_requests(api):
    """The engine's threads (its loop, stages, muxes and the driver's renders) run at
    serve.nice; the client's and the request handlers' threads keep the process's niceness."""
    client, service = api
    obj, _ = wait_end(client, client.post("/v1/renders", json={"job": JOB}).json()["id"])
    assert obj["status"] == "succeeded", obj
    base = os.getpriority(os.PRIO_PROCESS, 0)  # this process's, as CI started it
    engine = {}
    others = set()
    for t in threading.enumerate():
        kind = t.name.split("_")[0]
        if kind in ("engine", "look", "detect", "render", "mux"):
            engine[kind] = os.getpriority(os.PRIO_PROCESS, t.native_id)
        else:
            others.add(os.getpriority(os.PRIO_PROCESS, t.native_id))
    assert engine == dict.fromkeys(("engine", "look", "detect", "render", "mux"), 19)
    assert others == {base}


@pytest.mark.unit
@pytest.mark.parametrize("setting, value", [("serve.nice", -1), ("serve.nice", 20), ("serve.max_in_flight", 0)])
def test_a_services_setting_out_of_range_is_refused_naming_it(tmp_path, setting, value):
    from raypipe.errors import RaypipeError

    with pytest.raises(RaypipeError, match=rf"^{setting}: must be"):
        make_service(tmp_path / "serve", f"{setting}={value}")
    assert not (tmp_path / "serve").exists()


@pytest.mark.render
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(api, tmp_path):
    client, service = api
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "serve").rglob("*"))
    cases = [
        ({"job": {**JOB, "segments": [{"source": "sample:astronaut", "duraton": 1}]}}, 422, "job.segments[0].duraton"),
        ({"job": JOB, "overrides": ["render.fsp=3"]}, 422, "render.fsp"),
        ({"job": JOB, "overrides": ["detector.kind=clip"]}, 422, "overrides: detector.kind: a request sets only"),
        ({"job": JOB, "overrides": ["render.width=8000", "render.height=8000"]}, 422, "render.width: 8000x8000"),
        ({"job": JOB, "overrides": ["render.fps=240"]}, 422, "render.fps: 240 is over serve.max_fps"),
        ({"job": JOB, "overrides": ["render.variants=[{name: sq, width: 96, height: 96}]"]}, 422,
         "render.variants: a request renders one video"),
        ({"job": {"name": "x", "segments": [{"source": "/etc/passwd", "duration": 1}]}}, 422,
         "job.segments[0].source: /etc/passwd is outside serve.allowed_roots"),
        ({"job": {"name": "x", "segments": [{"source": "http://10.0.0.1/a.jpg", "duration": 1}]}}, 422,
         "job.segments[0].source: http://10.0.0.1/a.jpg is outside serve.allowed_roots"),
        ({"job": {**JOB, "layers": [{"type": "image", "source": "/etc/hostname"}]}}, 422,
         "job.layers[0].source: /etc/hostname is outside serve.allowed_roots"),
        ({"job": {**JOB, "layers": [{"type": "text", "text": "x", "font": "/usr/share/fonts/x.ttf"}]}}, 422,
         "job.layers[0].font: /usr/share/fonts/x.ttf is outside serve.allowed_roots"),
        ({"job": {**JOB, "audio": {"tracks": [{"path": "/etc/hostname"}]}}}, 422,
         "job.audio.tracks[0].path: /etc/hostname is outside serve.allowed_roots"),
        ({"job": JOB, "webhook_url": "http://169.254.169.254/x"}, 422, "webhook_url: 169.254.169.254 is a loopback"),
        ({"job": {"name": "x", "segments": [{"source": "sample:coffee", "duration": 9999}]}}, 422,
         "job.segments: 9999 s of video, over serve.max_duration_s"),
        ({"job": JOB, "colour": 1}, 422, "colour: no such field"),
        ({"template": "../../etc/x", "row": {}}, 422, "template: no template named"),
    ]
    for body, status, message in cases:
        answer = client.post("/v1/renders", json=body)
        assert (answer.status_code, answer.json()["error"][:len(message)]) == (status, message), answer.text
    assert client.post("/v1/renders", content=b"{nope").status_code == 400
    assert client.post("/v1/renders", content=b"x" * (2 << 20)).json()["error"].startswith("body: 2097152 bytes, over")
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "serve").rglob("*")) == before
    assert client.get("/v1/renders/r_nope").status_code == 404


@pytest.mark.render
def test_an_idempotent_retry_renders_once_and_another_body_is_a_409(api):
    client, service = api
    first = client.post("/v1/renders", json={"job": JOB}, headers={"Idempotency-Key": "k1"})
    again = client.post("/v1/renders", json={"job": JOB}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    other = client.post("/v1/renders", json={"job": {**JOB, "name": "u"}}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409 and other.json()["error"].startswith("Idempotency-Key:")
    wait_end(client, first.json()["id"])
    assert len(client.get("/v1/renders").json()["renders"]) == 1


@pytest.mark.render
def test_cancel_stops_a_render_publishes_nothing_and_is_idempotent(api, tmp_path):
    client, service = api
    long_job = {"name": "long", "segments": [{"source": "sample:astronaut", "duration": 60.0, "effect": "ken_burns"}]}
    created = client.post("/v1/renders", json={"job": long_job, "overrides": ["render.width=320", "render.height=180",
                                                                             "render.fps=12"]}).json()
    for _ in range(600):
        if client.get(f"/v1/renders/{created['id']}").json()["frames"]["done"] > 0:
            break
        time.sleep(0.1)
    assert client.post(f"/v1/renders/{created['id']}/cancel").status_code == 202
    obj, _ = wait_end(client, created["id"])
    assert obj["status"] == "cancelled" and obj["output"] is None
    assert client.post(f"/v1/renders/{created['id']}/cancel").status_code == 202  # again: the same answer
    assert not list((tmp_path / "serve" / "outputs").rglob("*.mp4"))
    assert not (tmp_path / "serve" / "run" / created["id"] / "segments").exists()
    done = client.post("/v1/renders", json={"job": JOB}).json()
    wait_end(client, done["id"])
    assert client.post(f"/v1/renders/{done['id']}/cancel").status_code == 409


@pytest.mark.render
def test_a_template_and_its_row_render_and_a_row_is_checked_as_a_batch_checks_it(api):
    client, service = api
    row = {"id": "elm", "address": "1 Elm St", "price": "$1", "photos": ["sample:astronaut", "sample:coffee"]}
    created = client.post("/v1/renders", json={"template": "listing", "row": row,
                                               "overrides": ["batch.each.duration=0.5"]})
    assert created.status_code == 422  # batch.* is the service's: a request sets render.* and job.*
    created = client.post("/v1/renders", json={"template": "listing", "row": row})
    assert created.status_code == 202, created.text
    obj, _ = wait_end(client, created.json()["id"])
    assert obj["status"] == "succeeded" and obj["output"]["duration"] == pytest.approx(3 * 2.5)  # two photos and the end card: a transition takes its segment's tail
    missing = client.post("/v1/renders", json={"template": "listing", "row": {"photos": ["sample:coffee"]}})
    assert missing.status_code == 422 and "address: no such field" in missing.json()["error"]


@pytest.mark.render
def test_renders_queued_per_key_are_limited_with_a_429(tmp_path):
    from fastapi.testclient import TestClient

    from raypipe.serve.app import make_app

    service = make_service(tmp_path / "serve", "serve.max_queued_per_key=1")  # not started: the first stays queued
    with TestClient(make_app(service)) as client:
        assert client.post("/v1/renders", json={"job": JOB}).status_code == 202
        refused = client.post("/v1/renders", json={"job": JOB})
        assert refused.status_code == 429 and refused.headers["Retry-After"]
        assert refused.json()["error"].startswith("renders: 1 renders of this key have not ended")
    service.engine.seal()
    service.engine.close()


@pytest.mark.render
def test_clip_loads_once_for_the_services_life(tmp_path, tiny_clip):
    from fastapi.testclient import TestClient

    from raypipe.serve.app import make_app

    service = make_service(tmp_path / "serve", "detector=clip", *[f"{k}={v}" for k, v in tiny_clip.items()])
    service.start()
    try:
        with TestClient(make_app(service)) as client:
            ids = [client.post("/v1/renders", json={"job": {"name": "t", "segments": [
                {"source": f"sample:{name}", "duration": 0.5}]}}).json()["id"]
                for name in ("astronaut", "coffee", "chelsea")]
            assert [wait_end(client, i)[0]["status"] for i in ids] == ["succeeded"] * 3
            assert client.get("/v1/stats").json()["detector_loads"] == 1
    finally:
        service.close()


@pytest.mark.render
def test_keys_keep_each_keys_renders_its_own(tmp_path):
    from fastapi.testclient import TestClient

    from raypipe.serve.app import make_app

    service = make_service(tmp_path / "serve", "serve.auth=true")
    (_, alice), (_, bob) = service.store.create_key("alice"), service.store.create_key("bob")
    service.start()
    try:
        with TestClient(make_app(service)) as client:
            assert client.post("/v1/renders", json={"job": JOB}).status_code == 401
            assert client.get("/v1/stats", headers={"Authorization": "Bearer rp_x_y"}).status_code == 401
            assert client.get("/healthz").status_code == 200
            a = {"Authorization": f"Bearer {alice}"}
            created = client.post("/v1/renders", json={"job": JOB}, headers=a).json()
            assert client.get(f"/v1/renders/{created['id']}", headers={"Authorization": f"Bearer {bob}"}
                              ).status_code == 404
            obj, _ = wait_end(client, created["id"], headers=a)
            assert f"/outputs/key-{alice.split('_')[1]}/" in obj["output"]["uri"]
    finally:
        service.close()


@pytest.mark.render
def test_a_render_under_way_when_the_service_died_is_failed_with_the_reason_on_start(tmp_path):
    root = tmp_path / "serve"
    store = Store(str(root))
    store.add(RenderRecord("r_dead", "", time.time(), status="rendering", status_since=time.time()))
    (root / "run" / "r_dead" / "segments").mkdir(parents=True)
    service = make_service(root)
    record = service.store.get("r_dead")
    assert record.status == "failed" and record.error.startswith("service: it stopped while this render was rendering")
    assert not (root / "run" / "r_dead").exists()
    service.close()


@pytest.mark.render
def test_a_render_cut_by_a_stop_is_taken_up_again_from_the_chunk_cache_and_ends_once(tmp_path, receiver):
    from raypipe.serve.service import Caller

    root, cached = tmp_path / "serve", ["render.cache=true", "render.max_frames_per_task=6"]
    job = {"name": "cut", "segments": [{"source": "sample:astronaut", "duration": 60.0, "effect": "ken_burns"}]}
    body = json.dumps({"job": job, "webhook_url": receiver}).encode()
    first = make_service(root, *cached)
    first.start()
    record, _ = first.submit(body, Caller())
    deadline = time.time() + 300
    while record.frames_done < 24:
        assert time.time() < deadline and not record.ended, record
        time.sleep(0.05)
    first.close()
    cut = Store(str(root)).get(record.id)
    assert not cut.ended and cut.progress > 0 and not list((root / "outputs").rglob("*.mp4")) and not Receiver.got

    again = make_service(root, *cached)
    again.start()
    try:
        resumed = again.store.get(record.id)
        seen = [resumed.progress]
        while not resumed.ended:
            seen.append(resumed.progress)
            time.sleep(0.05)
        whole, _ = again.submit(json.dumps({"job": job, "overrides": ["render.cache=false"]}).encode(), Caller())
        while not whole.ended:
            time.sleep(0.05)
    finally:
        again.close()
    assert resumed.status == "succeeded" and resumed.resumed == 1, resumed
    assert seen == sorted(seen) and seen[0] >= cut.progress  # progress never went back, over the restart too
    assert 24 <= resumed.frames_reused < resumed.frames_total == 360
    assert not (root / "jobs").exists() or not list((root / "jobs").iterdir())
    assert np.array_equal(media.decode_all(resumed.output["uri"]), media.decode_all(whole.output["uri"]))
    for _ in range(100):
        if Receiver.got:
            break
        time.sleep(0.1)
    assert [json.loads(sent)["status"] for _, sent in Receiver.got] == ["succeeded"]


# --- render: the service as a process, over HTTP -------------------------------------------------------

def start_service(root, port, cwd):
    import subprocess
    import sys

    args = [sys.executable, "-m", "raypipe", "serve", *TINY, f"serve.port={port}", f"serve.root={root}",
            "serve.auth=true", "serve.allowed_hosts=[127.0.0.1]", f"serve.webhook_secret={SECRET}", "ray.num_cpus=2",
            f"hydra.run.dir={root}/hydra"]
    with open(root.parent / "serve.log", "a") as log:
        return subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "RAY_AUTH_MODE": "disabled"})


def wait_ready(http, proc, timeout=240):
    import httpx

    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, "the service exited"
        try:
            if http.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise AssertionError("the service did not become ready")


def poll(http, render_id, until, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        obj = http.get(f"/v1/renders/{render_id}").json()
        if until(obj):
            return obj
        time.sleep(0.5)
    raise AssertionError(f"{render_id}: {obj}")


@pytest.mark.render
@pytest.mark.early
@pytest.mark.timeout(900)
def test_the_service_as_a_process_over_http(tmp_path, receiver):
    import signal
    import subprocess
    import sys

    import httpx

    from conftest import free_port

    root, port = tmp_path / "serve", free_port()
    made = subprocess.run([sys.executable, "-m", "raypipe", "keys", "create", "ci", f"serve.root={root}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("rp_") and key not in (root / "keys.json").read_text()
    proc = start_service(root, port, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        wait_ready(http, proc)
        assert httpx.get(f"{base}/v1/renders").status_code == 401
        body = {"job": JOB, "webhook_url": receiver, "metadata": {"n": 1}}
        first = http.post("/v1/renders", json=body, headers={"Idempotency-Key": "one"})
        assert first.status_code == 202, first.text
        again = http.post("/v1/renders", json=body, headers={"Idempotency-Key": "one"})
        assert again.json()["id"] == first.json()["id"]
        rid = first.json()["id"]
        done = poll(http, rid, lambda o: o["status"] in ("succeeded", "failed"))
        assert done["status"] == "succeeded", done
        (tmp_path / "got.mp4").write_bytes(http.get(f"/v1/renders/{rid}/video").content)
        assert media.count_frames(str(tmp_path / "got.mp4")) == 12
        for _ in range(100):
            if Receiver.got:
                break
            time.sleep(0.1)
        headers, sent = Receiver.got[0]
        assert verify(SECRET, sent, headers["X-Raypipe-Signature"]) and json.loads(sent)["id"] == rid

        long_job = {"job": {"name": "long", "segments": [{"source": "sample:astronaut", "duration": 600.0,
                                                          "effect": "ken_burns"}]},
                    "overrides": ["render.width=640", "render.height=360", "render.fps=24"]}
        cancelled = http.post("/v1/renders", json=long_job).json()["id"]
        poll(http, cancelled, lambda o: o["frames"]["done"] > 0)
        assert http.post(f"/v1/renders/{cancelled}/cancel").status_code == 202
        assert poll(http, cancelled, lambda o: o["ended_at"] is not None)["status"] == "cancelled"

        cut = http.post("/v1/renders", json=long_job).json()["id"]
        poll(http, cut, lambda o: o["frames"]["done"] > 0)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=180)
        proc = start_service(root, port, tmp_path)
        wait_ready(http, proc)
        taken_up = http.get(f"/v1/renders/{cut}").json()  # submitted again by the restart
        assert taken_up["resumed"] == 1 and taken_up["ended_at"] is None and taken_up["error"] is None, taken_up
        assert http.post(f"/v1/renders/{cut}/cancel").status_code == 202
        assert poll(http, cut, lambda o: o["ended_at"] is not None)["status"] == "cancelled"
        listed = {r["id"]: r["status"] for r in http.get("/v1/renders").json()["renders"]}
        assert listed == {rid: "succeeded", cancelled: "cancelled", cut: "cancelled"}
        assert http.get(f"/v1/renders/{rid}/video").status_code == 200
        outputs = sorted(p.name for p in (root / "outputs").rglob("*.mp4"))
        assert outputs == [f"{rid}.mp4"]  # nothing partial of the cancelled or the cut render
        assert http.get("/v1/stats").json()["renders"] == {"succeeded": 1, "cancelled": 2}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
