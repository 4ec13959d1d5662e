"""Layers: text, images, boxes and videos drawn over the segments in order, the last on top,
each over a span of global frames, with an entrance and an exit. One module per layer type and
one object per animation; every frame is a function of its global index."""
from raypipe.frames.layers.anchors import ANCHORS, AUTO_ORDER
from raypipe.frames.layers.box import BoxLayer
from raypipe.frames.layers.caption import CaptionLayer
from raypipe.frames.layers.drawing import Drawing
from raypipe.frames.layers.image import ImageLayer
from raypipe.frames.layers.layer import Layer, Motion
from raypipe.frames.layers.motion import ANIMATIONS
from raypipe.frames.layers.text import TextLayer
from raypipe.frames.layers.video import VideoLayer

# A job's `type` -> its kind: `make(cfg, where, out_w, out_h, read)` plans it (`read.size(uri)`
# is an image's width and height, `read.probe(uri)` a video's MediaInfo); `keys` are the
# LayerCfg keys it reads beyond those every layer has.
LAYER_TYPES = {"text": TextLayer, "image": ImageLayer, "box": BoxLayer, "video": VideoLayer}

__all__ = ["ANCHORS", "AUTO_ORDER", "ANIMATIONS", "LAYER_TYPES", "BoxLayer", "CaptionLayer", "Drawing", "ImageLayer",
           "Layer", "Motion", "TextLayer", "VideoLayer"]
