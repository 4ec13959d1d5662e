"""Run storage on pyarrow.fs, S3 included: a real S3-compatible server (moto) on 127.0.0.1."""
import json
import os
from pathlib import Path

import cv2
import pytest

from conftest import CREDENTIALS, bucket_keys as keys, read_report, render_error, run_cli, with_test_conf
from raypipe import media
from raypipe.media import load_image
from test_render import FIXTURE_FRAMES


@pytest.mark.render
def test_a_render_reads_sources_from_s3_and_puts_its_run_there(s3, tmp_path):
    env, client = s3
    ok, png = cv2.imencode(".png", cv2.cvtColor(load_image("sample:coffee"), cv2.COLOR_RGB2BGR))
    client.put_object(Bucket="renders", Key="photos/coffee.png", Body=png.tobytes())
    run_dir = tmp_path / "outputs" / "fixture" / "2026-11-24_10-00-00"
    proc = run_cli("--config-dir", "tests/conf", "+job=fixture", "detector=saliency", "storage.root=s3://renders/runs",
                   "job.segments.3.source=s3://renders/photos/coffee.png", f"hydra.run.dir={run_dir}", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = "runs/fixture/2026-11-24_10-00-00"
    assert proc.stdout.strip().splitlines()[-1] == f"s3://renders/{run}/fixture.mp4"
    stored = keys(client, run)
    assert f"{run}/fixture.mp4" in stored and f"{run}/report.json" in stored and f"{run}/.hydra/config.yaml" in stored
    assert not [k for k in stored if "/segments/" in k or k.endswith(".tmp")]  # no chunks, no half-written files
    video = tmp_path / "fetched.mp4"
    video.write_bytes(client.get_object(Bucket="renders", Key=f"{run}/fixture.mp4")["Body"].read())
    assert media.count_frames(str(video)) == FIXTURE_FRAMES
    report = json.loads(client.get_object(Bucket="renders", Key=f"{run}/report.json")["Body"].read())
    assert report == read_report(run_dir) and report["run"] == f"s3://renders/{run}"
    assert not list(run_dir.glob("*.mp4"))  # the video went to storage, not the local run dir
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in proc.stdout + proc.stderr
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in (run_dir / "render.log").read_text()


@pytest.mark.render
def test_s3_objects_are_put_whole_once_and_the_cache_there_serves_the_next_render(s3, tmp_path):
    """In a versioned bucket a temporary object moved into place (a copy and a delete) would
    leave a version and a delete marker behind: every object here has exactly one version. As the
    CLI, in a process of its own: a Ray this process started before the S3 server would give its
    workers no endpoint for it."""
    env, client = s3
    client.create_bucket(Bucket="direct")
    client.put_bucket_versioning(Bucket="direct", VersioningConfiguration={"Status": "Enabled"})
    for run in ("first", "second"):
        proc = run_cli("--config-dir", "tests/conf", "+job=fixture", "detector=saliency", "storage.root=s3://direct/r",
                       f"hydra.run.dir={tmp_path / 'outputs' / 'fixture' / run}", env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    first, second = (read_report(tmp_path / "outputs" / "fixture" / run) for run in ("first", "second"))
    versions = client.list_object_versions(Bucket="direct")
    # Deleted by design: the writability checks' probes, the staged inputs (after the render)
    # and pyarrow's folder markers; never a temporary copy of a result.
    probe = ".raypipe-write-check-"
    deleted = [m["Key"] for m in versions.get("DeleteMarkers", [])]
    assert all(probe in k or "/inputs/" in k or k.endswith("/") for k in deleted), deleted
    keys = [v["Key"] for v in versions["Versions"] if probe not in v["Key"]]
    assert not [k for k in keys if ".tmp" in k]
    keys = [k for k in keys if not k.endswith("/")]  # pyarrow keeps a folder's marker after a delete in it
    assert len(keys) == len(set(keys)) and "r/fixture/second/fixture.mp4" in keys
    chunks = [k for k in keys if k.startswith("r/cache/chunks/")]
    assert len(chunks) == first["tasks"] == second["cache"]["chunks_reused"] and second["cache"]["frames_rendered"] == 0
    assert second["cache"]["root"] == "s3://direct/r/cache"


@pytest.mark.render
def test_an_unwritable_storage_root_is_one_line_before_any_work(s3, tmp_path, caplog):
    line = render_error(caplog, "fixture", with_test_conf("detector=saliency", "storage.root=s3://no-such-bucket/runs"),
                        tmp_path / "run")  # one line: render_error checks it
    assert line.startswith("storage.root: cannot write to s3://no-such-bucket/runs/"), line
    assert "segment 0" not in caplog.text


@pytest.mark.unit
def test_an_upload_folder_left_by_a_killed_process_is_removed_by_the_next_upload(s3, tmp_path, monkeypatch):
    """A process SIGKILLed mid-upload to S3 runs no cleanup: its folder stays in TMPDIR until
    the next process that uploads sees that its writer is dead."""
    import subprocess
    import sys
    import tempfile

    from raypipe import storage

    _, client = s3
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = tmp_path / f"raypipe-out-{dead.pid}-abcd"
    left.mkdir()
    (left / "file.mp4").write_bytes(b"half")
    mine = tmp_path / f"raypipe-out-{os.getpid()}-efgh"  # a live writer's: left alone
    mine.mkdir()
    with storage.publishing("s3://renders/uploads/video.mp4") as local:
        assert not left.exists() and mine.exists()
        assert os.path.basename(os.path.dirname(local)).startswith(f"raypipe-out-{os.getpid()}-")
        Path(local).write_bytes(b"whole")
    assert keys(client, "uploads/") == ["uploads/video.mp4"]


@pytest.mark.unit
def test_a_file_on_storage_is_fetched_once_per_version_and_an_older_versions_copy_goes(tmp_path):
    """What a node does with model weights on storage: one copy of each version, under the
    file's own name; the copy of the version before, and a dead process's download, deleted."""
    import subprocess
    import sys
    import time

    from raypipe import storage
    from raypipe.storage import HOST, local_copy, temp_name

    remote, cache = tmp_path / "bucket" / "model.bin", tmp_path / "cache"
    remote.parent.mkdir()
    remote.write_bytes(b"weights v1")
    uri = f"file://{remote}"
    first = local_copy(uri, str(cache))
    assert Path(first).name == "model.bin" and Path(first).read_bytes() == b"weights v1"
    os.utime(first, (1, 1))  # fetched again, it would have a new time
    assert local_copy(uri, str(cache)) == first and os.stat(first).st_mtime == 1
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    versions = Path(first).parent.parent
    left = versions / f".x~{HOST}~{dead.pid}~abcdef.tmp"  # a killed download's
    live = versions / temp_name("y")  # a download under way in a live process
    left.mkdir()
    live.mkdir()
    remote.write_bytes(b"weights v2, longer")
    old = time.time() - storage.UNUSED_COPY_S - 1  # v1 unused for longer than a load takes: it may go
    os.utime(Path(first).parent, (old, old))
    second = local_copy(uri, str(cache))
    assert second != first and Path(second).read_bytes() == b"weights v2, longer"
    assert sorted(p.name for p in versions.iterdir()) == sorted([".lock", Path(second).parent.name, live.name])
    assert local_copy(str(remote), str(cache)) == str(remote)  # a path is read where it is
    with pytest.raises(FileNotFoundError, match="no such file: file://"):
        local_copy(f"file://{tmp_path}/none.bin", str(cache))


@pytest.mark.unit
def test_processes_of_a_node_that_ask_for_one_file_at_once_fetch_it_once(tmp_path, monkeypatch):
    """Two detector actors starting together on a node: one downloads, the other waits for
    its copy (a lock); a version asked for while another is in use leaves that one alone."""
    import shutil
    import threading

    from raypipe.storage import local_copy

    remote = tmp_path / "bucket" / "model.bin"
    remote.parent.mkdir()
    remote.write_bytes(b"w" * 100_000)
    copies, copy = [], shutil.copyfileobj
    monkeypatch.setattr(shutil, "copyfileobj", lambda *a: copies.append(1) or copy(*a))
    got = []
    threads = [threading.Thread(target=lambda: got.append(local_copy(f"file://{remote}", str(tmp_path / "c"))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(copies) == 1 and len(set(got)) == 1 and Path(got[0]).read_bytes() == b"w" * 100_000
    remote.write_bytes(b"v2")
    newer = local_copy(f"file://{remote}", str(tmp_path / "c"))
    assert Path(got[0]).exists() and Path(newer).read_bytes() == b"v2"  # v1 was just used: kept
