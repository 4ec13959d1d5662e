"""Media at the edge: probe, decode, encode and join, in-process through PyAV.

Everything that touches a media file's bytes lives here; the planner and the effects see
only upright RGB arrays and plain values.
"""
from raypipe.media.encode import CODECS, X264_PRESETS, ChunkEncoder, Codec, EncodeSpec
from raypipe.media.images import SAMPLES, load_image, load_image_sized, load_rgba
from raypipe.media.streams import MediaError, ReadCounter, generated, normalize, open_source
from raypipe.media.video import MediaInfo, count_frames, decode_all, is_video, keyframes, probe, read_frames

__all__ = ["CODECS", "X264_PRESETS", "ChunkEncoder", "Codec", "EncodeSpec", "SAMPLES", "load_image", "load_image_sized",
           "load_rgba", "MediaError", "generated",
           "ReadCounter", "normalize", "open_source", "MediaInfo", "count_frames", "decode_all",
           "is_video", "keyframes", "probe", "read_frames"]
