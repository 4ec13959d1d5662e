"""Synthesises raypipe/assets/demo_clip.mp4, the demo's video source (run once, committed).

Four seconds of a slow handheld-style camera drift over the astronaut photograph, so the
subject moves across the frame (for detection on keyframes and a reframe that follows it),
with its own sound: a soft bell every half second, loud enough to hear under the soundtrack.
"""
import subprocess
import sys
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import skimage.data

W, H, FPS, SECONDS, RATE = 960, 540, 30, 4.0, 48000


def frames():
    src = cv2.resize(skimage.data.astronaut(), (1600, 1600), interpolation=cv2.INTER_CUBIC)
    n = int(SECONDS * FPS)
    for k in range(n):
        p = k / (n - 1)
        s = p * p * (3 - 2 * p)
        # The view drifts from the left of the picture to its right and a little down, so
        # the astronaut slides from the right of the frame to the left.
        x0 = 60 + s * (1600 - 1200 - 120) + 6 * np.sin(2 * np.pi * 0.7 * k / FPS)
        y0 = 80 + s * 220 + 4 * np.sin(2 * np.pi * 0.45 * k / FPS + 1)
        m = np.array([[1200 / W, 0, x0], [0, 675 / H, y0]])
        yield cv2.warpAffine(src, m, (W, H), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP)


def bells():
    t = np.arange(int(SECONDS * RATE)) / RATE
    out = np.zeros_like(t)
    for start in np.arange(0, SECONDS, 0.5):
        u = t - start
        on = u >= 0
        out[on] += np.sin(2 * np.pi * 880 * u[on]) * np.exp(-u[on] * 6) * 0.4
    return (np.clip(out, -1, 1) * 32767).astype("<i2")


def main(out: Path):
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    wav = out.with_suffix(".wav")
    with open(wav, "wb") as f:
        data = bells().tobytes()
        import wave

        with wave.open(f, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(data)
    proc = subprocess.Popen([ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
                             "-s", f"{W}x{H}", "-r", str(FPS), "-i", "-", "-i", str(wav), "-c:v", "libx264",
                             "-preset", "slow", "-crf", "26", "-pix_fmt", "yuv420p", "-g", "30", "-c:a", "aac",
                             "-b:a", "96k", "-shortest", "-movflags", "+faststart", str(out)], stdin=subprocess.PIPE)
    for f in frames():
        proc.stdin.write(np.ascontiguousarray(f).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit("ffmpeg failed")
    wav.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "raypipe/assets/demo_clip.mp4")
