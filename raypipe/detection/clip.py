"""CLIP subject localization: the only module that imports torch and open_clip.

Training-free dense localization (ClearCLIP, ECCV 2024): the last ViT block's attention is
replaced by q-q attention with the residual and the FFN removed, which turns CLIP's noisy,
often inverted patch tokens into a usable per-patch embedding. Each patch is scored against
the job's subject prompts and a list of background prompts; P(any subject prompt) is the
heat map, thresholded and reduced to its heaviest connected component.
"""
from __future__ import annotations

import logging
import os
import re
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from raypipe.config import WEIGHTS, local_cache
from raypipe.detection.detections import Subject, bounded, subject_from_heat
from raypipe.detection.info import LoadCounter
from raypipe.detection.saliency import detect_saliency
from raypipe.detection.settings import WEIGHTS_HINT as hint, checkpoint_missing, is_checkpoint_path as _is_path
from raypipe.errors import WeightsUnavailable, first_line
from raypipe.storage import local_copy

log = logging.getLogger(__name__)

TEMPLATES = ("a photo of {}.", "a close-up photo of {}.", "a photo of the {} in the scene.")


def _hub_reachable(timeout: float = 3.0) -> bool:
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False
    finally:
        socket.setdefaulttimeout(previous)


def _cached_hub_repos() -> list[str]:
    """The model repos in the local Hugging Face cache, as org/name."""
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    try:
        names = os.listdir(os.environ.get("HF_HUB_CACHE", os.path.join(home, "hub")))
    except OSError:
        return []
    return [n[len("models--"):].replace("--", "/") for n in names if n.startswith("models--")]


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def weights_missing(cfg) -> str | None:
    """Why the configured weights surely cannot be loaded, found without importing torch (a
    ~4 s import that a render falling back to saliency should not pay); None when they may.
    Offline, a tag loads only from the cache, where open_clip's hub repos are named after
    their tags (laion2b_s34b_b79k -> laion/CLIP-ViT-B-32-laion2B-s34B-b79K)."""
    if not cfg.pretrained:
        return f"detector.pretrained is null: CLIP needs weights; {hint}"
    if _is_path(cfg.pretrained):
        missing = checkpoint_missing(cfg.pretrained)
        return missing and f"detector.pretrained: {missing}"
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or not _hub_reachable()
    if not offline or any(_squash(cfg.pretrained) in _squash(repo) for repo in _cached_hub_repos()):
        return None
    return (f"detector.pretrained: open_clip tag {cfg.model}/{cfg.pretrained} is not in the local cache and the "
            f"model hub is unreachable; {hint}")


def load(cfg) -> tuple[object, dict]:
    """Create the open_clip model with its weights: a tag (cached or fetched) or a local file."""
    if not cfg.pretrained:
        raise WeightsUnavailable(f"detector.pretrained is null: CLIP needs weights; {hint}")
    # With no route to the hub, huggingface_hub retries for ~45 s before giving up; look only
    # in the local cache instead. The variable is read when huggingface_hub is imported.
    hub_down = not _is_path(cfg.pretrained) and "HF_HUB_OFFLINE" not in os.environ and not _hub_reachable()
    if hub_down:
        os.environ["HF_HUB_OFFLINE"] = "1"
    import open_clip
    import torch

    torch.set_num_threads(max(1, int(cfg.num_cpus)))
    name = cfg.model
    if cfg.model_config:
        path = Path(_on_disk("detector.model_config", cfg.model_config, "file"))
        open_clip.add_model_config(path)
        if name != path.stem:
            raise WeightsUnavailable(f"detector.model: {name!r} is not the model {path} defines ({path.stem!r})")
    if name not in open_clip.list_models():
        raise WeightsUnavailable(f"detector.model: unknown open_clip model {name!r}")
    weights = cfg.pretrained
    if _is_path(cfg.pretrained):
        weights = _on_disk("detector.pretrained", cfg.pretrained, "checkpoint file")
    elif cfg.pretrained not in open_clip.list_pretrained_tags_by_model(name):
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise WeightsUnavailable(f"detector.pretrained: {cfg.pretrained!r} is not a tag of {name} (tags: {tags})")
    size = tuple(cfg.image_size) if cfg.image_size else None
    try:
        model = open_clip.create_model(name, pretrained=weights, force_image_size=size,
                                       require_pretrained=True)
    except Exception as e:  # open_clip raises RuntimeError/OSError/KeyError by route
        if hub_down:
            raise WeightsUnavailable(f"detector.pretrained: open_clip tag {name}/{cfg.pretrained} is not in the "
                                     f"local cache and the model hub is unreachable; {hint}") from None
        where = cfg.pretrained if _is_path(cfg.pretrained) else f"open_clip tag {name}/{cfg.pretrained}"
        raise WeightsUnavailable(f"detector.pretrained: could not load weights from {where} ({first_line(e)}); "
                                 f"{hint}") from None
    model.eval()
    pre = open_clip.get_model_preprocess_cfg(model)
    return model, {"mean": pre["mean"], "std": pre["std"], "tokenizer": open_clip.get_tokenizer(name)}


def _on_disk(field: str, value: str, what: str) -> str:
    """The local file of a path, or of a URI on storage (fetched once per node, into its cache:
    a cluster's actors on other nodes cannot read the driver's paths)."""
    if "://" in value:
        try:
            return local_copy(value, str(local_cache() / WEIGHTS))
        except (OSError, ValueError) as e:
            raise WeightsUnavailable(f"{field}: cannot fetch {value} ({first_line(e)}); {hint}") from None
    if not os.path.isfile(value):  # checked before any work: here, a node that is not the driver's
        raise WeightsUnavailable(f"{field}: no {what} at {value} on {socket.gethostname()}; {hint}")
    return value


# The side the heat map and the mask are made at: the heat is a patch grid (7x7 for ViT-B/32
# at 224 px, 28x28 for ViT-B/16 at 448), which 256 px carries with room to spare; thresholding
# and labelling at the source's full size cost more than the forward pass of a batch.
HEAT_SIDE = 256


@dataclass(frozen=True)
class Prepared:
    """One image ready for the model: its input tensor's pixels, a copy at most HEAT_SIDE a
    side (the heat and the mask are made at that size), and the source's size."""

    pixels: np.ndarray  # (h, w, 3) float32, normalised, at the model's input size
    small: np.ndarray  # RGB uint8
    size: tuple[int, int]  # the source's (width, height)


class ClipDetector:
    """CLIP on the sources, `batch` images per forward pass, on the GPU when the detector asks
    for one and the node has it. The prompts come with each call (a batch's rows may each have
    their own); each set's text embedding is made once. Its model load is counted in `loads`
    where one is given (a detector made for a benchmark's timing alone counts nothing)."""

    def __init__(self, cfg, loads: LoadCounter | None = None):
        import torch

        t0 = time.perf_counter()
        self.cfg = cfg
        self.device = "cuda" if cfg.num_gpus > 0 and torch.cuda.is_available() else "cpu"
        if cfg.num_gpus > 0 and self.device == "cpu":
            log.warning("detector.num_gpus=%s but torch sees no GPU here: CLIP runs on the CPU", cfg.num_gpus)
        self.model, pre = load(cfg)
        if loads is not None:
            loads.add()
        self.model.to(self.device)
        self.batch = max(1, int(cfg.batch_size))
        self.side = max(*self.model.visual.image_size, HEAT_SIDE)  # the most it looks at of an image
        self.mean = np.asarray(pre["mean"], np.float32)
        self.std = np.asarray(pre["std"], np.float32)
        self.tokenizer = pre["tokenizer"]
        self._texts: dict[tuple[str, ...], object] = {}
        self.name = f"clip:{cfg.model}/{os.path.basename(str(cfg.pretrained))}"
        log.info("CLIP %s loaded on %s in %.1f s", self.name, self.device, time.perf_counter() - t0)

    def threads(self, n: int) -> None:
        """Its forward passes on `n` of the CPU's threads from now on."""
        import torch

        if self.device == "cpu" and torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def text(self, prompts: tuple[str, ...]):
        """The subject prompts' and the background prompts' embeddings, (P, D)."""
        if prompts not in self._texts:
            self._texts[prompts] = embed_prompts(self.model, self.tokenizer, (*prompts, *self.cfg.background_prompts),
                                                 self.device)
        return self._texts[prompts]

    def prepare(self, rgb: np.ndarray) -> Prepared:
        ih, iw = self.model.visual.image_size
        x = cv2.resize(rgb, (iw, ih), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        return Prepared((x - self.mean) / self.std, bounded(rgb, HEAT_SIDE), (rgb.shape[1], rgb.shape[0]))

    def heats(self, items: list[Prepared], prompts: tuple[str, ...]) -> list[np.ndarray]:
        """P(any subject prompt) per pixel, [0, 1], at each item's small size: one forward pass."""
        import torch

        text = self.text(prompts)
        x = torch.from_numpy(np.stack([p.pixels for p in items])).permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode():
            feats = dense_patch_features(self.model, x, self.cfg.method)
            probs = (self.cfg.logit_scale * feats @ text.T).softmax(-1)
            fg = probs[..., : len(prompts)].sum(-1).float().cpu().numpy()
        return [cv2.resize(f, (p.small.shape[1], p.small.shape[0]), interpolation=cv2.INTER_LINEAR)
                for f, p in zip(fg, items)]

    def detect_prepared(self, items: list[Prepared], prompts: tuple[str, ...]) -> list[Subject]:
        out = []
        for p, heat in zip(items, self.heats(items, prompts)):
            subject = subject_from_heat(heat, self.cfg.threshold, "clip")
            if subject is None:
                log.warning("CLIP found no subject in an image: using saliency for it")
                subject = detect_saliency(p.small, method="saliency (no CLIP subject)")
            sx, sy = p.size[0] / p.small.shape[1], p.size[1] / p.small.shape[0]
            x0, y0, x1, y1 = subject.box
            out.append(replace(subject, box=(x0 * sx, y0 * sy, x1 * sx, y1 * sy), size=p.size))
        return out

    def detect(self, rgb: np.ndarray, prompts: tuple[str, ...]) -> Subject:
        return self.detect_prepared([self.prepare(rgb)], prompts)[0]


def embed_prompts(model, tokenizer, prompts, device: str = "cpu"):
    """Each prompt's text embedding, (P, D), the mean over TEMPLATES, unit-normalised: every
    template of every prompt in one pass of the text tower."""
    import torch
    import torch.nn.functional as F

    tokens = tokenizer([t.format(p) for p in prompts for t in TEMPLATES]).to(device)
    with torch.inference_mode():
        e = F.normalize(_encode_text(model, tokens), dim=-1).reshape(len(prompts), len(TEMPLATES), -1)
        return F.normalize(e.mean(1), dim=-1)


def _encode_text(model, tokens):
    """`model.encode_text`, cut to the longest prompt where that changes nothing. CLIP's text
    tower is causal and reads its embedding at the end token, which sees only the tokens
    before it: the padding after it (77 positions for prompts of about 12 tokens) is work
    whose result is thrown away, 6x the text tower's cost, 10 s of a CPU render's start."""
    import torch.nn as nn
    from open_clip.model import CLIP
    from open_clip.transformer import text_global_pool

    causal = isinstance(model, CLIP) and model.text_pool_type == "argmax" and model.attn_mask is not None
    if not causal:  # a text tower that attends both ways or pools otherwise: all of it
        return model.encode_text(tokens)
    n = int(tokens.argmax(dim=-1).max()) + 1  # past the last end token (the largest id)
    tokens = tokens[:, :n]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:n, :n]))
    x = text_global_pool(x, tokens, model.text_pool_type)
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, nn.Linear) else x @ projection


def dense_patch_features(model, images, mode: str = "clearclip"):
    """Per-patch embeddings in CLIP's text space, (B, gh, gw, D), unit-normalised."""
    import torch.nn.functional as F

    v = model.visual
    x = v._embeds(images)
    for blk in v.transformer.resblocks[:-1]:
        x = blk(x)
    blk = v.transformer.resblocks[-1]
    attn = blk.attn
    y = blk.ln_1(x)
    b, n, c = y.shape
    h = attn.num_heads
    scale = (c // h) ** -0.5
    q, k, val = F.linear(y, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    q, k, val = (t.reshape(b, n, h, c // h).transpose(1, 2) for t in (q, k, val))
    if mode == "maskclip":
        o = val
    elif mode == "sclip":
        o = ((q @ q.transpose(-1, -2) * scale).softmax(-1) + (k @ k.transpose(-1, -2) * scale).softmax(-1)) @ val
    else:
        o = (q @ q.transpose(-1, -2) * scale).softmax(-1) @ val
    o = attn.out_proj(o.transpose(1, 2).reshape(b, n, c))
    if mode == "clearclip":
        feats = o
    else:
        feats = x + o
        feats = feats + blk.mlp(blk.ln_2(feats))
    feats = v.ln_post(feats) @ v.proj
    gh, gw = v.grid_size
    return F.normalize(feats[:, 1:], dim=-1).reshape(b, gh, gw, -1)
