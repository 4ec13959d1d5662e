"""Synthesises raypipe/assets/demo_soundtrack.m4a, the demo's soundtrack (run once, committed).

A slow four-chord progression of soft additive-synth pads with an arpeggio on top: enough
for a viewer (and a test) to hear that the audio is there and continuous across segments.
"""
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np

RATE, SECONDS, BPM = 48000, 16.0, 96
CHORDS = [(57, 60, 64), (53, 57, 60), (48, 52, 55), (55, 59, 62)]  # Am F C G


def hz(note):
    return 440.0 * 2 ** ((note - 69) / 12)


def tone(freq, length, attack=0.02, release=0.3):
    t = np.arange(int(length * RATE)) / RATE
    wave = sum(np.sin(2 * np.pi * freq * k * t) / k**1.5 for k in (1, 2, 3))
    env = np.minimum(1, t / attack) * np.minimum(1, (length - t) / release).clip(0)
    return wave * env


def main(out: Path):
    mix = np.zeros((int(SECONDS * RATE), 2))
    bar = 4 * 60 / BPM
    for i in range(int(SECONDS / bar) + 1):
        chord = CHORDS[i % len(CHORDS)]
        start = int(i * bar * RATE)
        for note in chord:
            pad = 0.08 * tone(hz(note - 12), bar + 0.3, attack=0.4, release=0.6)
            seg = mix[start : start + len(pad)]
            seg += pad[: len(seg), None]
        for j in range(8):
            note = chord[j % 3] + (12 if j >= 4 else 0)
            s = start + int(j * bar / 8 * RATE)
            pluck = 0.12 * tone(hz(note), bar / 8 + 0.2, release=0.25)
            pan = 0.5 + 0.3 * np.sin(j)
            seg = mix[s : s + len(pluck)]
            seg += pluck[: len(seg), None] * np.array([1 - pan, pan])
    mix /= np.abs(mix).max() / 0.8
    pcm = (mix * 32767).astype("<i2").tobytes()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "s16le", "-ar", str(RATE),
                    "-ac", "2", "-i", "-", "-c:a", "aac", "-b:a", "128k", str(out)], input=pcm, check=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "raypipe/assets/demo_soundtrack.m4a")
