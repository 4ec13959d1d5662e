"""Layers: text, images and boxes drawn over the segments in order, the last on top, each over a
span of global frames, with an entrance and an exit. One module per layer type and one object
per animation; every frame is a function of its global index."""
from raypipe.frames.layers.anchors import ANCHORS, AUTO_ORDER
from raypipe.frames.layers.box import BoxLayer
from raypipe.frames.layers.caption import CaptionLayer
from raypipe.frames.layers.drawing import Drawing
from raypipe.frames.layers.image import ImageLayer
from raypipe.frames.layers.layer import Layer, Motion
from raypipe.frames.layers.motion import ANIMATIONS
from raypipe.frames.layers.text import TextLayer

# A job's `type` -> its kind: `make(cfg, where, out_w, out_h, measure)` plans it; `keys` are
# the LayerCfg keys it reads beyond those every layer has.
LAYER_TYPES = {"text": TextLayer, "image": ImageLayer, "box": BoxLayer}

__all__ = ["ANCHORS", "AUTO_ORDER", "ANIMATIONS", "LAYER_TYPES", "BoxLayer", "CaptionLayer", "Drawing", "ImageLayer",
           "Layer", "Motion", "TextLayer"]
