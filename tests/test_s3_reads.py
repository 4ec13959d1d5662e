"""What S3 serves for a clip of which the job shows a few short ranges, counted outside
raypipe by a reverse proxy in front of moto's server: at most the file's size, less for a
smaller share shown, and what report.json says it read."""
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import pytest

import media_inputs as mi
from conftest import read_report, run_cli

pytestmark = pytest.mark.render

JOB = """# @package _global_
job:
  name: shown
  segments:
{segments}
render: {{width: 160, height: 90, fps: 15}}
"""


class CountingProxy:
    """HTTP on 127.0.0.1, each request passed to `upstream`; counts the body bytes of the
    answers to GETs, as S3 bills them."""

    def __init__(self, upstream: str):
        target = urlparse(upstream)
        self.bytes, self.lock = 0, threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the AWS SDK expects

            def log_message(self, *args):
                pass

            def forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                up = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                up.request(self.command, self.path, body=body,
                           headers={k: v for k, v in self.headers.items() if k.lower() != "connection"})
                answer = up.getresponse()
                data = answer.read()
                up.close()
                if self.command == "GET":
                    with proxy.lock:
                        proxy.bytes += len(data)
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                # A HEAD's length is the object's; there is no body to send.
                self.send_header("Content-Length", answer.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def noisy_clip(tmp_path_factory):
    """30 s of 640x360 with noise at ~5.5 Mbit/s, a key frame every 1.5 s, AAC sound, and
    the index (moov) at the end, as ffmpeg writes it by default: ~20 MB."""
    path = tmp_path_factory.mktemp("noisy") / "noisy.mp4"
    mi.ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=30", "-f", "lavfi", "-i",
              "sine=frequency=440:duration=30", "-vf", "noise=alls=10:allf=t", "-c:v", "libx264", "-preset",
              "ultrafast", "-crf", "25", "-g", "45", "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", str(path))
    return path


def render_through_proxy(s3, tmp_path, name, starts):
    """Renders 2 s of the clip from each start; returns (bytes S3 served, report.json)."""
    env, _ = s3
    proxy = CountingProxy(env["AWS_ENDPOINT_URL"])
    segments = "\n".join(f"    - {{source: s3://renders/clips/noisy.mp4, start: {s}, end: {s + 2}}}" for s in starts)
    conf = tmp_path / name / "conf" / "job"
    conf.mkdir(parents=True)
    (conf / "shown.yaml").write_text(JOB.format(segments=segments))
    run_dir = tmp_path / name / "run"
    try:
        proc = run_cli("--config-dir", str(conf.parent), "+job=shown", "detector=saliency", f"hydra.run.dir={run_dir}",
                       env={**env, "AWS_ENDPOINT_URL": proxy.url})
    finally:
        proxy.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proxy.bytes, read_report(run_dir)


def test_s3_serves_no_more_than_the_file_for_a_few_short_ranges_and_report_json_counts_it(s3, noisy_clip, tmp_path):
    _, client = s3
    client.put_object(Bucket="renders", Key="clips/noisy.mp4", Body=noisy_clip.read_bytes())
    size = noisy_clip.stat().st_size
    four, report = render_through_proxy(s3, tmp_path, "four", [2, 9, 16, 23])  # 8 s of 30 shown
    two, small = render_through_proxy(s3, tmp_path, "two", [2, 23])  # 4 s of 30
    # Detection decoded the shown spans only, and the tasks their ranges: not the 21 s between.
    assert four <= 1.0 * size, (four, size)
    assert two <= 0.6 * four, (two, four)
    for served, r in ((four, report), (two, small)):
        counted = {k: v for k, v in r["bytes_read"].items() if k != "mux"}  # the muxer reads local chunks
        assert {"detector", "segments", "probe", "validate", "sheet"} <= counted.keys()
        assert abs(sum(counted.values()) - served) <= 0.02 * served, (counted, served)
