"""Test inputs made on the spot: pictures with known colour layouts, written as the stills and
clips people actually have (rotated phone video, EXIF-rotated JPEGs, 16-bit and palette PNGs,
CMYK, alpha, ICC profiles, anamorphic, variable frame rate, 10-bit and HDR, broken files).

Every generator writes into a folder the caller gives (a pytest tmp_path) and uses only
numpy, Pillow, OpenCV, PyAV and the ffmpeg binary that imageio-ffmpeg ships; nothing is
downloaded. The expected pictures are computed here with numpy, independently of the code
under test.
"""
from __future__ import annotations

import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import imageio_ffmpeg
import numpy as np
from PIL import Image

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()

# Four colours that tell every corner apart, so that any rotation or mirroring of a picture
# (the 8 EXIF orientations, the display rotations) puts a different colour in each corner.
RED, GREEN, BLUE, YELLOW = (220, 40, 40), (40, 190, 60), (40, 60, 220), (230, 210, 40)
QUADRANTS = np.array([[RED, GREEN], [BLUE, YELLOW]], np.uint8)  # [row][col]: TL, TR / BL, BR


def ffmpeg(*args: str, stdin: bytes | None = None) -> bytes:
    """Runs the ffmpeg binary; its own message is in the exception when it fails."""
    quiet = ["-hide_banner", "-loglevel", "error", "-y"] + (["-nostdin"] if stdin is None else [])
    proc = subprocess.run([FFMPEG, *quiet, *args], input=stdin, capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout


def ffmpeg_info(path) -> str:
    """What `ffmpeg -i` says about a file (its stream lines and side data), for checking
    that an input carries the metadata it claims."""
    proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-i", str(path)], capture_output=True, text=True)
    return proc.stderr


def ffmpeg_decode(path, width: int, height: int) -> np.ndarray:
    """Every frame as ffmpeg itself decodes it to RGB (autorotate on, its default), (N, H, W, 3)."""
    raw = ffmpeg("-i", str(path), "-an", "-f", "rawvideo", "-pix_fmt", "rgb24", "-")
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


# ---- pictures -----------------------------------------------------------------------


def quadrant_picture(width: int, height: int) -> np.ndarray:
    """HxWx3 uint8: RED top-left, GREEN top-right, BLUE bottom-left, YELLOW bottom-right."""
    img = np.empty((height, width, 3), np.uint8)
    h2, w2 = height // 2, width // 2
    img[:h2, :w2], img[:h2, w2:] = QUADRANTS[0, 0], QUADRANTS[0, 1]
    img[h2:, :w2], img[h2:, w2:] = QUADRANTS[1, 0], QUADRANTS[1, 1]
    return img


def quadrant_means(img: np.ndarray) -> np.ndarray:
    """2x2x3 float: the mean colour of the middle half of each quadrant of an HxWx3 picture
    (away from the quadrant borders, where chroma subsampling and JPEG blocks blur)."""
    h, w = img.shape[:2]
    out = np.empty((2, 2, 3))
    for r in range(2):
        for c in range(2):
            y0, x0 = r * h // 2, c * w // 2
            out[r, c] = img[y0 + h // 8:y0 + 3 * h // 8, x0 + w // 8:x0 + 3 * w // 8].reshape(-1, 3).mean(0)
    return out


def marked_frames(width: int, height: int, count: int) -> np.ndarray:
    """(count, H, W, 3): the quadrant picture with a white marker square that moves left to right
    along the middle row, so that consecutive frames differ and time order is visible. The
    marker stays on the horizontal mid-line, outside the regions `quadrant_means` reads."""
    frames = np.repeat(quadrant_picture(width, height)[None], count, axis=0)
    side = max(4, height // 10)
    y0 = height // 2 - side // 2
    for i in range(count):
        x0 = (width - side) * i // max(1, count - 1)
        frames[i, y0:y0 + side, x0:x0 + side] = 255
    return frames


def marker_centre(frame: np.ndarray) -> np.ndarray:
    """(row, col) of the white marker's centre in a frame of `marked_frames`, however turned:
    the mean position of its near-white pixels (no quadrant colour is near white)."""
    rows, cols = np.nonzero(frame.min(axis=2) > 200)
    assert len(rows), "no marker in the frame"
    return np.array([rows.mean(), cols.mean()])


def encode_rgb(path, frames: np.ndarray, fps: int = 24, *, codec_args=("-c:v", "libx264", "-preset", "veryfast",
                                                                          "-crf", "12", "-pix_fmt", "yuv420p"),
               vf: str | None = None, extra=()) -> Path:
    """Encodes RGB frames (N, H, W, 3) through the ffmpeg binary, moov atom first for .mp4/.mov."""
    n, h, w, _ = frames.shape
    args = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
    if vf:
        args += ["-vf", vf]
    args += [*codec_args, *extra]
    if str(path).endswith((".mp4", ".mov")):
        args += ["-movflags", "+faststart"]
    ffmpeg(*args, str(path), stdin=np.ascontiguousarray(frames).tobytes())
    return Path(path)


# ---- rotated phone video ------------------------------------------------------------


def rotated_clip(folder, rotation: int, width=192, height=108, fps=24, count=24,
                 frames: np.ndarray | None = None) -> tuple[Path, np.ndarray]:
    """A landscape H.264 clip (of `frames`, default the moving marker) rewrapped with
    `-display_rotation ROTATION` (counter-clockwise degrees, as ffmpeg defines it), the way
    phones store portrait video: coded pixels as the sensor saw them plus a display matrix.
    Returns (path, upright frames) where the upright frames are the source frames turned by
    numpy: np.rot90(frame, ROTATION // 90) turns counter-clockwise."""
    folder = Path(folder)
    if frames is None:
        frames = marked_frames(width, height, count)
    count, height, width = frames.shape[:3]
    plain = folder / f"plain_{width}x{height}x{count}.mp4"
    if not plain.exists():
        encode_rgb(plain, frames, fps)
    path = folder / f"rotated_{rotation}.mp4"
    ffmpeg("-display_rotation", str(rotation), "-i", str(plain), "-c", "copy", "-movflags", "+faststart", str(path))
    upright = np.stack([np.rot90(f, (rotation // 90) % 4) for f in frames])
    return path, upright


# ---- stills -------------------------------------------------------------------------

# How the stored pixels relate to the picture a viewer shows, per EXIF orientation (from the
# EXIF 2.3 definitions of the 0th row and 0th column), written as the inverse: STORE[o](upright)
# gives the pixels to store so that a correct reader shows `upright`.
STORE = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],                 # shown mirrored left-right
    3: lambda a: a[::-1, ::-1],              # shown turned 180
    4: lambda a: a[::-1],                    # shown mirrored top-bottom
    5: lambda a: a.transpose(1, 0, 2),       # shown transposed (row 0 is the left side)
    6: lambda a: np.rot90(a, 1),             # shown turned 90 clockwise, so store it turned back
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # transverse
    8: lambda a: np.rot90(a, -1),            # shown turned 90 counter-clockwise
}


def exif_jpeg(folder, orientation: int, width=120, height=80, picture: np.ndarray | None = None
              ) -> tuple[Path, np.ndarray]:
    """A JPEG whose pixels, with its EXIF Orientation tag applied, are `picture` (default
    the quadrant picture, landscape, width x height). Returns (path, upright picture)."""
    upright = quadrant_picture(width, height) if picture is None else picture
    stored = np.ascontiguousarray(STORE[orientation](upright))
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    path = Path(folder) / f"exif_{orientation}.jpg"
    Image.fromarray(stored).save(path, quality=95, subsampling=0, exif=exif.tobytes())
    return path, upright


def grey16_ramp(folder, width=256, height=16) -> Path:
    """A 16-bit greyscale PNG, a left-to-right ramp from 0 to 65535."""
    ramp = np.round(np.linspace(0, 65535, width)).astype(np.uint16)
    path = Path(folder) / "grey16.png"
    Image.fromarray(np.ascontiguousarray(np.tile(ramp, (height, 1)))).save(path)  # mode I;16
    return path


# 16-bit colours and the 8-bit sRGB values they scale to (v / 257).
RGB16_PATCHES = [((65535, 0, 0), (255, 0, 0)), ((0, 65535, 0), (0, 255, 0)), ((0, 0, 65535), (0, 0, 255)),
                 ((32896, 16448, 49344), (128, 64, 192)), ((65535, 65535, 65535), (255, 255, 255)),
                 ((257 * 10, 257 * 200, 257 * 90), (10, 200, 90))]


def patches(colours, side=16, dtype=np.uint8) -> np.ndarray:
    """A row of square patches, one per colour: (side, side * len(colours), channels)."""
    return np.concatenate([np.full((side, side, len(c)), c, dtype) for c in colours], axis=1)


def patch_values(img: np.ndarray, n: int, side=16) -> np.ndarray:
    """The mean colour of the middle of each patch of a picture made by `patches`: (n, 3)."""
    m = side // 4
    return np.array([img[m:side - m, i * side + m:(i + 1) * side - m].reshape(-1, img.shape[2]).mean(0)
                     for i in range(n)])


def rgb16_png(folder) -> Path:
    """A 16-bit RGB PNG (OpenCV writes BGR order) with the RGB16_PATCHES colours."""
    import cv2

    rgb = patches([c for c, _ in RGB16_PATCHES], dtype=np.uint16)
    path = Path(folder) / "rgb16.png"
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1]))
    return path


GREY_LEVELS = [0, 1, 64, 128, 200, 255]


def grey8_png(folder) -> Path:
    """An 8-bit greyscale (L) PNG with patches at GREY_LEVELS."""
    path = Path(folder) / "grey8.png"
    Image.fromarray(patches([(g,) for g in GREY_LEVELS])[:, :, 0]).save(path)
    return path


PALETTE = [(255, 0, 0), (0, 128, 255), (20, 200, 20), (250, 250, 250)]
# tRNS alpha per palette entry for the transparent variant: opaque, half, clear, opaque.
PALETTE_ALPHA = [255, 128, 0, 255]


def palette_png(folder, transparent: bool) -> Path:
    """A palette (P mode) PNG with one patch per PALETTE entry; with `transparent`, a tRNS chunk
    gives the entries PALETTE_ALPHA."""
    index = patches([(i,) for i in range(len(PALETTE))])[:, :, 0]
    im = Image.frombytes("P", (index.shape[1], index.shape[0]), index.tobytes())
    im.putpalette([v for c in PALETTE for v in c])
    path = Path(folder) / ("palette_alpha.png" if transparent else "palette.png")
    if transparent:
        im.save(path, transparency=bytes(PALETTE_ALPHA))
    else:
        im.save(path)
    return path


# CMYK ink amounts (0..255, as Pillow's CMYK mode holds them) and the sRGB colour each should
# look like.
CMYK_PATCHES = [((255, 0, 0, 0), (0, 255, 255)), ((0, 255, 0, 0), (255, 0, 255)), ((0, 0, 255, 0), (255, 255, 0)),
                ((0, 0, 0, 255), (0, 0, 0)), ((0, 0, 0, 0), (255, 255, 255))]


def cmyk_jpeg(folder) -> Path:
    """A CMYK JPEG as Pillow saves it (an Adobe marker, inverted ink values, as Photoshop
    writes them) with the CMYK_PATCHES inks."""
    cmyk = patches([c for c, _ in CMYK_PATCHES])
    path = Path(folder) / "cmyk.jpg"
    Image.frombytes("CMYK", (cmyk.shape[1], cmyk.shape[0]), cmyk.tobytes()).save(path, quality=95)
    return path


# Straight (not premultiplied) RGBA, and what compositing over black gives: colour * alpha / 255.
RGBA_PATCHES = [(200, 100, 50, 255), (200, 100, 50, 128), (255, 255, 255, 0), (40, 220, 240, 64)]


def rgba_png(folder) -> Path:
    path = Path(folder) / "rgba.png"
    Image.fromarray(patches(RGBA_PATCHES)).save(path)  # 4 channels of uint8: RGBA
    return path


def over_black(rgba) -> np.ndarray:
    c = np.asarray(rgba, float)
    return c[:3] * c[3] / 255


# ---- ICC: a wide-gamut profile written by hand --------------------------------------

ADOBE_PRIMARIES = [(0.64, 0.33), (0.21, 0.71), (0.15, 0.06)]
D65 = (0.3127, 0.3290)
SRGB_PRIMARIES = [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)]
ADOBE_GAMMA = 563 / 256  # Adobe RGB (1998)'s 2.19921875, exactly as a u8Fixed8 curve holds it
D50_XYZ = (0.9642, 1.0, 0.8249)  # the ICC profile connection space white


def xy_to_xyz(x, y) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries, white) -> np.ndarray:
    """Linear RGB -> XYZ for the given chromaticities, scaled so that RGB (1,1,1) is the white (Y = 1)."""
    p = np.stack([xy_to_xyz(*xy) for xy in primaries], axis=1)
    s = np.linalg.solve(p, xy_to_xyz(*white))
    return p * s


BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def bradford(src_white_xyz, dst_white_xyz) -> np.ndarray:
    src, dst = BRADFORD @ src_white_xyz, BRADFORD @ dst_white_xyz
    return np.linalg.inv(BRADFORD) @ np.diag(dst / src) @ BRADFORD


def _s15(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def _xyz_tag(xyz) -> bytes:
    return b"XYZ " + b"\0" * 4 + b"".join(_s15(v) for v in xyz)


def _desc_tag(text: str) -> bytes:
    ascii_ = text.encode() + b"\0"
    # textDescriptionType: ASCII part, an empty Unicode part, an empty ScriptCode part (67 bytes).
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(ascii_)) + ascii_ + b"\0" * 8 + b"\0" * 3 + b"\0" * 67


def _text_tag(text: str) -> bytes:
    return b"text" + b"\0" * 4 + text.encode() + b"\0"


def _curve_tag(gamma: float) -> bytes:
    return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"


def matrix_trc_profile(primaries=ADOBE_PRIMARIES, white=D65, gamma=ADOBE_GAMMA,
                       description="raypipe test wide-gamut RGB") -> bytes:
    """A minimal ICC v2.1 display (matrix/TRC) RGB profile: colorants adapted to the D50
    connection space with Bradford, as ICC v2 profiles store them, and one gamma for all
    three channels. With the defaults it is Adobe RGB (1998) in all but name."""
    m = bradford(rgb_to_xyz_matrix(primaries, white).sum(1), np.array(D50_XYZ)) @ rgb_to_xyz_matrix(primaries, white)
    tags = [(b"desc", _desc_tag(description)), (b"cprt", _text_tag("No copyright, test data")),
            (b"wtpt", _xyz_tag(D50_XYZ)),
            (b"rXYZ", _xyz_tag(m[:, 0])), (b"gXYZ", _xyz_tag(m[:, 1])), (b"bXYZ", _xyz_tag(m[:, 2])),
            (b"rTRC", _curve_tag(gamma)), (b"gTRC", _curve_tag(gamma)), (b"bTRC", _curve_tag(gamma))]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        body += b"\0" * (-len(body) % 4)  # tags start on 4-byte boundaries
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (struct.pack(">I", size) + b"none" + bytes([2, 0x10, 0, 0]) + b"mntr" + b"RGB " + b"XYZ "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 4 + struct.pack(">I", 0) + b"\0" * 4
              + b"\0" * 4 + b"\0" * 8 + struct.pack(">I", 0)  # flags, manufacturer, model, attributes, intent
              + b"".join(_s15(v) for v in D50_XYZ) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28)
    assert len(header) == 128, len(header)
    return header + struct.pack(">I", len(tags)) + table + data


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0, 1)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def adobe_to_srgb(rgb8) -> np.ndarray:
    """The sRGB (0..255 float) that an Adobe RGB (1998) colour (0..255) looks like: decode
    its gamma, go through XYZ (both are D65, so no adaptation), encode with sRGB's curve."""
    lin = (np.asarray(rgb8, float) / 255) ** ADOBE_GAMMA
    xyz = rgb_to_xyz_matrix(ADOBE_PRIMARIES, D65) @ lin
    return srgb_encode(np.linalg.solve(rgb_to_xyz_matrix(SRGB_PRIMARIES, D65), xyz)) * 255


# Adobe RGB colours inside the sRGB gamut (so no clipping choice matters), chosen so that
# ignoring the profile would be off by far more than rounding.
ICC_COLOURS = [(100, 160, 80), (170, 60, 60), (120, 180, 110), (150, 90, 160), (200, 180, 90), (128, 128, 128)]


def icc_png(folder) -> Path:
    """An RGB PNG tagged (iCCP) with the hand-written Adobe-RGB-like profile, ICC_COLOURS patches."""
    path = Path(folder) / "adobe_rgb.png"
    Image.fromarray(patches(ICC_COLOURS)).save(path, icc_profile=matrix_trc_profile())
    return path


# ---- anamorphic ---------------------------------------------------------------------


def disc_picture(width=320, height=180) -> np.ndarray:
    """The quadrant picture with a white disc in the middle (diameter 0.6 x height): at the
    right display aspect the disc is round."""
    img = quadrant_picture(width, height)
    yy, xx = np.mgrid[:height, :width]
    img[(xx - width / 2 + 0.5) ** 2 + (yy - height / 2 + 0.5) ** 2 <= (0.3 * height) ** 2] = 255
    return img


def anamorphic_clip(folder, count=12, fps=24) -> tuple[Path, np.ndarray]:
    """The 320x180 disc picture squeezed to 240x180 and flagged SAR 4:3 (a display aspect of
    16:9), as DV and some broadcast and camera files are. Returns (path, picture as displayed)."""
    picture = disc_picture(320, 180)
    path = Path(folder) / "anamorphic.mp4"
    encode_rgb(path, np.repeat(picture[None], count, axis=0), fps, vf="scale=240:180:flags=area,setsar=4/3")
    return path, picture


# ---- variable frame rate ------------------------------------------------------------

VFR_TIME_BASE = Fraction(1, 1000)
# Frame durations alternating 97 ms and 33 ms (about 10 and 30 fps): no frame change lands
# within 3 ms of a 1/30 s output tick (checked by vfr_timestamps), so "the frame on screen at
# j/30" has one answer that no float rounding can flip, while picking the nearest frame
# instead of the one on screen gives a different answer at many ticks.
VFR_DURATIONS_MS = (97, 33)


def vfr_timestamps(count: int) -> list[float]:
    ts, t = [], 0
    for k in range(count):
        ts.append(t / 1000)
        t += VFR_DURATIONS_MS[k % 2]
    grid = np.arange(0, 40) / 30
    gaps = np.abs(np.array(ts[1:])[:, None] - grid[None])
    assert gaps.min() >= 0.0029, "a frame change too close to an output tick"
    return ts


def vfr_level(k: int) -> int:
    """The grey level of VFR frame k: its index, readable after lossy coding."""
    return 16 + 12 * k


def vfr_clip(folder, count=18, width=160, height=90) -> tuple[Path, list[float]]:
    """An H.264 .mp4 (B-frames on) whose frames have irregular timestamps (VFR_DURATIONS_MS),
    written with PyAV so the timestamps are exactly the ones set. Frame k is a flat grey of
    vfr_level(k). Returns (path, the frames' start times in seconds)."""
    import av

    times = vfr_timestamps(count)
    path = Path(folder) / "vfr.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=40, options={"crf": "8", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = VFR_TIME_BASE
        stream.codec_context.time_base = VFR_TIME_BASE
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), vfr_level(k), np.uint8), format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = VFR_TIME_BASE
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path, times


def on_screen(times: list[float], t: float) -> int:
    """The index of the frame shown at time t: the last one starting at or before t."""
    return int(np.searchsorted(np.asarray(times), t + 1e-9, side="right")) - 1


# ---- 10-bit and HDR -----------------------------------------------------------------


def ramp_picture(width=320, height=180) -> np.ndarray:
    """Colour bars over a grey ramp, for comparing 8-bit and 10-bit encodes of one picture."""
    img = np.zeros((height, width, 3), np.uint8)
    bars = [RED, GREEN, BLUE, YELLOW, (255, 255, 255), (128, 128, 128), (0, 0, 0), (40, 200, 220)]
    bw = width // len(bars)
    for i, c in enumerate(bars):
        img[:height // 2, i * bw:(i + 1) * bw] = c
    img[height // 2:] = np.linspace(0, 255, width).astype(np.uint8)[None, :, None]
    return img


def sdr_pair(folder, count=6) -> tuple[Path, Path, np.ndarray]:
    """The same picture as an 8-bit and a 10-bit (yuv420p10le) BT.709 H.265 clip, both tagged
    BT.709. Returns (8-bit path, 10-bit path, picture)."""
    picture = ramp_picture()
    frames = np.repeat(picture[None], count, axis=0)
    tags = ["-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709", "-color_range", "tv"]
    paths = []
    for bits, fmt in ((8, "yuv420p"), (10, "yuv420p10le")):
        path = Path(folder) / f"sdr_{bits}bit.mp4"
        # The tags go on the filter's output frames too: the encoder takes them from the frames.
        encode_rgb(path, frames, 24, vf="scale=out_color_matrix=bt709:out_range=tv,"
                                        "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709",
                   codec_args=("-c:v", "libx265", "-preset", "ultrafast", "-crf", "8", "-pix_fmt", fmt,
                               "-x265-params", "log-level=error", "-tag:v", "hvc1"), extra=tags)
        paths.append(path)
    return paths[0], paths[1], picture


def pq_encode(nits) -> np.ndarray:
    """SMPTE ST 2084 inverse EOTF: absolute luminance (cd/m2) to the PQ signal, 0..1."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = (np.asarray(nits, float) / 10000) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


# Grey patches of a PQ clip by their light: black, a dark grey, a mid grey, SDR reference
# white (203 cd/m2, BT.2408) and highlights up to 1000 cd/m2.
PQ_NITS = [0.0, 1.0, 5.0, 15.0, 38.0, 100.0, 203.0, 400.0, 1000.0]
PQ_MID_GREY, PQ_REFERENCE_WHITE = PQ_NITS.index(38.0), PQ_NITS.index(203.0)  # 18 % grey is 38 cd/m2 in BT.2408
# Grey patches of an HLG clip by their signal value; 0.75 is HLG's reference white (BT.2408).
HLG_SIGNALS = [0.0, 0.1, 0.25, 0.38, 0.5, 0.6, 0.75, 0.9, 1.0]
HLG_MID_GREY, HLG_REFERENCE_WHITE = HLG_SIGNALS.index(0.38), HLG_SIGNALS.index(0.75)  # BT.2408's 18 % grey and white


def grey_yuv10_clip(folder, name: str, signals, trc: str, count=6, side=32) -> Path:
    """A 10-bit BT.2020 H.265 clip of neutral grey patches, one per signal value (0..1 of the
    non-linear signal, written straight into limited-range Y' with neutral chroma, so no
    conversion touches them), tagged with the transfer `trc` (smpte2084 or arib-std-b67)."""
    width, height = side * len(signals), side
    y = np.concatenate([np.full((height, side), 64 + 876 * s) for s in signals], axis=1)
    y = np.round(y).astype("<u2")
    uv = np.full((height // 2, width // 2), 512, "<u2")
    frame = y.tobytes() + uv.tobytes() + uv.tobytes()
    tags = ["-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc", "-color_range", "tv"]
    path = Path(folder) / f"{name}.mp4"
    ffmpeg("-f", "rawvideo", "-pix_fmt", "yuv420p10le", "-s", f"{width}x{height}", "-r", "24", *tags, "-i", "-",
           "-c:v", "libx265", "-preset", "ultrafast", "-crf", "4", "-pix_fmt", "yuv420p10le",
           "-x265-params", "log-level=error", "-tag:v", "hvc1", *tags, "-movflags", "+faststart", str(path),
           stdin=frame * count)
    return path


def pq_clip(folder) -> Path:
    return grey_yuv10_clip(folder, "hdr_pq", pq_encode(PQ_NITS), "smpte2084")


def hlg_clip(folder) -> Path:
    return grey_yuv10_clip(folder, "hdr_hlg", HLG_SIGNALS, "arib-std-b67")


# ---- broken and odd files -----------------------------------------------------------


def truncated_mp4(folder, keep: float = 0.4) -> Path:
    """A 2 s faststart H.264 file (noisy, so bytes spread evenly over time) cut to its first
    `keep` of bytes: the index (moov) is whole and says 48 frames, the frame data after the
    cut is missing. At 0.4 the frames up to about 0.7 s remain, at 0.8 up to about 1.45 s."""
    full = encode_rgb(Path(folder) / "whole.mp4", marked_frames(192, 108, 48)
                      + np.random.default_rng(0).integers(0, 40, (48, 108, 192, 3), dtype=np.uint8))
    data = full.read_bytes()
    path = Path(folder) / f"truncated_{round(keep * 100)}.mp4"
    path.write_bytes(data[:int(len(data) * keep)])
    full.unlink()
    return path


def cut_png(folder) -> Path:
    """A PNG with a valid signature and header whose image data stops half way."""
    noise = np.random.default_rng(1).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    whole = Path(folder) / "whole.png"
    Image.fromarray(noise).save(whole)
    data = whole.read_bytes()
    whole.unlink()
    path = Path(folder) / "cut.png"
    path.write_bytes(data[:len(data) // 2])
    return path


def audio_only_mp4(folder) -> Path:
    """An .mp4 with one AAC stream and no video."""
    path = Path(folder) / "audio_only.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", "-movflags", "+faststart", str(path))
    return path


def empty_file(folder, name: str) -> Path:
    path = Path(folder) / name
    path.write_bytes(b"")
    return path
