"""Reads streamed from storage, and failures said plainly: a clip in S3 split over several
segments is read by byte ranges, a full disk and an encoder failing mid-chunk each end the
render with one line that carries the system's own reason, and nothing is left behind."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import pytest

import media_inputs as mi
from conftest import ROOT, read_report, run_cli
from raypipe import media
from raypipe.media import ChunkEncoder, EncodeSpec, MediaError
from raypipe.plan.timeline import parse_fps

SPLIT_JOB = """# @package _global_
job:
  name: streamed
  segments:
{segments}
render: {{width: 160, height: 90, fps: 15}}
detector: {{kind: saliency}}
"""


def watched_tmp(tmp_path):
    """A TMPDIR for the render (Ray's workers inherit it); Ray's own session files stay in
    the usual place, since they outlive a render by design."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    return tmp, {"TMPDIR": str(tmp), "RAY_TMPDIR": tempfile.gettempdir()}


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """6 s of detailed, moving video with a key frame every second: big enough (MBs) that a
    task reading the whole file would show in the byte counts."""
    folder = tmp_path_factory.mktemp("long_clip")
    path = folder / "long.mp4"
    mi.ffmpeg("-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30:duration=6", "-vf", "noise=alls=40:allf=t",
              "-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-g", "30", "-pix_fmt", "yuv420p", str(path))
    return path


@pytest.mark.render
def test_a_clip_in_s3_is_streamed_by_the_ranges_each_task_shows(s3, long_clip, tmp_path):
    env, client = s3
    client.put_object(Bucket="renders", Key="clips/long.mp4", Body=long_clip.read_bytes())
    size = long_clip.stat().st_size
    segments = "\n".join(f"    - {{source: s3://renders/clips/long.mp4, start: {s}, duration: 1.5}}"
                          for s in (0.0, 2.0, 4.0))
    conf = tmp_path / "conf" / "job"
    conf.mkdir(parents=True)
    (conf / "streamed.yaml").write_text(SPLIT_JOB.format(segments=segments))
    tmp, tmp_env = watched_tmp(tmp_path)
    run_dir = tmp_path / "run"
    proc = run_cli("--config-dir", str(tmp_path / "conf"), "+job=streamed", f"hydra.run.dir={run_dir}",
                   env={**env, **tmp_env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = read_report(run_dir)
    reads = [s["bytes_read"] for s in report["segment_runs"]]
    # Each task shows at most a quarter of the clip: it reads its range and the index, not the file.
    assert len(reads) == report["tasks"] >= 3 and all(0 < r < 0.45 * size for r in reads), (reads, size)
    assert report["bytes_read"]["segments"] == sum(reads)
    assert not list(tmp.iterdir())  # no fetched copies, no temporary folders
    # The frames are the clip's: segment 1 opens on the frame at 2.0 s (frame 60), which it
    # matches better than any neighbour (the clip's noise changes every frame).
    video = media.decode_all(report["output"])
    first = next(s["start"] for s in report["segment_runs"] if s["index"] == 1)
    source = media.decode_all(str(long_clip))
    errors = {k: np.abs(video[first].astype(int)
                        - cv2.resize(source[k], (160, 90), interpolation=cv2.INTER_AREA)).mean()
              for k in range(57, 64)}
    assert min(errors, key=errors.get) == 60, errors


@pytest.fixture
def tiny_disk(tmp_path):
    """A 192 KiB tmpfs: a real 'No space left on device' from the kernel."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(mount)], capture_output=True)
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs under CI: {proc.stderr.decode().strip()}")
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def noise_frames(count, width=640, height=360):
    rng = np.random.default_rng(7)
    return (rng.integers(0, 256, (height, width, 3), np.uint8) for _ in range(count))


@pytest.mark.unit
def test_an_encoder_that_runs_out_of_disk_mid_chunk_says_so(tmp_path):
    # /dev/full answers every write with ENOSPC, as a full disk does, and needs no root.
    chunk = tmp_path / "chunk.mp4"
    chunk.symlink_to("/dev/full")
    enc = EncodeSpec(640, 360, parse_fps(30), "h264", 0, "ultrafast", 1)
    encoder = ChunkEncoder(str(chunk), enc)
    with pytest.raises(MediaError) as e:
        for frame in noise_frames(60):  # lossless noise: the container's first write fails
            encoder.write(frame)
        encoder.close()
    message = str(e.value)
    assert "\n" not in message and "No space left on device" in message and "chunk.mp4" in message
    assert encoder.frames < 60  # it stopped at the failure, not after rendering everything


CHUNK = re.compile(r"\d{7}-\d{7}\.mp4")  # a whole chunk in the cache, named by its frame range
CACHED = re.compile(rf"{CHUNK.pattern}|[0-9a-f]{{32}}\.parquet")  # or a source's detections


@pytest.mark.render
def test_a_render_on_a_full_disk_fails_in_one_line_with_the_reason(tiny_disk, tmp_path):
    """The disk with the run directory and the cache (where chunks are encoded, in place)
    fills up mid-chunk."""
    output = tmp_path / "out" / "video.mp4"
    tmp, tmp_env = watched_tmp(tmp_path)
    proc = run_cli("--config-dir", "tests/conf", "+job=fixture", "detector=saliency", "render.width=1280",
                   "render.height=720", "render.crf=0", f"job.output={output}", f"hydra.run.dir={tiny_disk / 'run'}",
                   f"cache.root={tiny_disk / 'cache'}", env=tmp_env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "No space left on device" in lines[0], lines
    assert not output.exists() and not list(tmp_path.rglob("*.mp4"))
    # Nothing but Hydra's own record and whole chunks in the cache (for the next try) is
    # left: no half-written temporary file.
    left = [p.relative_to(tiny_disk) for p in tiny_disk.rglob("*") if p.is_file()]
    assert all(p.parts[1] in (".hydra", "render.log") or p.parts[0] == "cache" and CACHED.fullmatch(p.name)
               for p in left), left
    assert not list(tmp.iterdir())


# SIGTERM while Ray tasks render; Ctrl-C while the driver renders alone (told to, at a size
# that keeps it busy for seconds).
@pytest.mark.render
@pytest.mark.parametrize("signum,code,min_saving,size", [(signal.SIGTERM, 143, 0, 360), (signal.SIGINT, 130, 1e6, 720)],
                         ids=["SIGTERM on Ray", "SIGINT in the driver"])
def test_a_stopped_render_says_so_and_leaves_nothing(tmp_path, cache_dir, signum, code, min_saving, size):
    """SIGTERM (what `ray job stop` sends) or Ctrl-C mid-render: the tasks are cancelled, their
    temporary files removed (whole chunks stay in the cache, for the next try), one line says
    so, and the exit code is 128 + signal."""
    tmp, tmp_env = watched_tmp(tmp_path)
    run = tmp_path / "run"
    output = tmp_path / "out" / "video.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "raypipe", "render", "--config-dir", "tests/conf", "+job=fixture",
                             "detector=saliency", f"render.width={size * 16 // 9}", f"render.height={size}",
                             "render.max_frames_per_task=6", f"ray.min_saving_s={min_saving}", f"job.output={output}",
                             f"hydra.run.dir={run}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **tmp_env})
    deadline = time.time() + 240  # Ray's start and a first chunk, on a machine that may be loaded
    while not list(cache_dir.rglob("0*.mp4")):  # mid-render: a first chunk is stored
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() is not None else ""
        time.sleep(0.05)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    lines = err.strip().splitlines()
    assert lines == [f"interrupted: {signal.Signals(signum).name}: "
                     "the render was stopped and its partial files removed"]
    assert not output.exists() and not (run / "segments").exists() and not list(tmp_path.rglob("*.mp4"))
    assert not list(tmp.iterdir())
    assert all(CHUNK.fullmatch(p.name) for p in cache_dir.rglob("*.mp4")), list(cache_dir.rglob("*.mp4"))
