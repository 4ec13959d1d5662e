"""CLIP loading and dense localization, on a tiny open_clip config with random weights
saved as a real checkpoint (no weights can be downloaded here)."""
import time

import numpy as np
import pytest
import skimage.data
from omegaconf import OmegaConf

from raypipe.config import DetectorCfg
from raypipe.detection.clip import (
    TEMPLATES,
    ClipDetector,
    WeightsUnavailable,
    dense_patch_features,
    embed_prompts,
    load,
)
from raypipe.detection.detector import detect_all, expand
from raypipe.errors import JobError

pytestmark = pytest.mark.slow  # each loads open_clip and torch, or a model


def cfg(**kw):
    return OmegaConf.structured(DetectorCfg(**kw))


def test_checkpoint_loads_through_the_real_path_and_localizes(tiny_clip):
    import torch

    c = cfg(model="tiny-clip", model_config=tiny_clip["detector.model_config"],
            pretrained=tiny_clip["detector.pretrained"])
    model, _ = load(c)
    saved = torch.load(tiny_clip["detector.pretrained"])
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())  # the file's weights
    feats = dense_patch_features(model, torch.zeros(1, 3, 64, 64))
    assert feats.shape == (1, 4, 4, 32)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(1, 4, 4))

    img = np.ascontiguousarray(skimage.data.coffee())  # 600x400
    subject = ClipDetector(c).detect(img, ("a cup",))
    assert subject is not None and subject.method in ("clip", "saliency (no CLIP subject)")
    # The mask is made at most 256 px a side (the heat is a patch grid); the box is in the source's pixels.
    assert subject.mask.shape == (171, 256) and subject.mask.dtype == np.uint8 and subject.source_size == (600, 400)
    assert set(np.unique(subject.mask)) <= {0, 255} and subject.mask.any()
    ys, xs = np.nonzero(subject.mask)
    sx, sy = 600 / 256, 400 / 171
    assert subject.box == pytest.approx((xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy))


def test_prompts_embed_as_the_whole_text_tower_embeds_them_with_the_padding_cut(tiny_clip):
    """The text tower is causal and read at the end token: cutting the padding after the
    longest prompt changes no embedding, and a tower that is not causal runs whole."""
    import open_clip
    import torch
    import torch.nn.functional as F

    c = cfg(model="tiny-clip", model_config=tiny_clip["detector.model_config"],
            pretrained=tiny_clip["detector.pretrained"])
    model, pre = load(c)
    prompts = ("a person", "a red brick house with a garden", "sky")
    with torch.inference_mode():
        whole = torch.stack([F.normalize(F.normalize(model.encode_text(pre["tokenizer"](
            [t.format(p) for t in TEMPLATES])), dim=-1).mean(0), dim=-1) for p in prompts])
    cut = embed_prompts(model, pre["tokenizer"], prompts)
    assert cut.shape == whole.shape and torch.allclose(cut, whole, atol=1e-6)

    calls = []
    model.attn_mask = None  # as a text tower that attends both ways: nothing may be cut
    model.encode_text = lambda tokens: calls.append(tokens.shape) or open_clip.model.CLIP.encode_text(model, tokens)
    embed_prompts(model, pre["tokenizer"], prompts)
    assert calls == [(len(prompts) * len(TEMPLATES), 77)]


def test_one_load_serves_every_source(tiny_clip):
    c = cfg(model="tiny-clip", model_config=tiny_clip["detector.model_config"],
            pretrained=tiny_clip["detector.pretrained"])
    found, info = detect_all(c, ("sample:astronaut", "sample:coffee", "sample:rocket"), ("a person",))
    subjects = expand(found)
    assert info.clip_loads == 1
    assert tuple(subjects) == ("sample:astronaut", "sample:coffee", "sample:rocket")
    rocket = subjects["sample:rocket"]
    assert rocket.source_size == (640, 427) and rocket.mask.shape == (171, 256)  # CLIP's masks: 256 px a side


def test_the_engines_model_takes_every_cpu_while_nothing_renders_and_its_own_share_while_something_does(
        tiny_clip, tmp_path):
    import os
    import threading

    import skimage.io
    import torch

    from raypipe.engine.detecting import LocalDetector

    settings = OmegaConf.to_object(cfg(model="tiny-clip", model_config=tiny_clip["detector.model_config"],
                                       pretrained=tiny_clip["detector.pretrained"], num_cpus=1))
    photos = []
    for name in ("astronaut", "coffee"):
        photos.append(str(tmp_path / f"{name}.png"))
        skimage.io.imsave(photos[-1], getattr(skimage.data, name)())
    rendering = threading.Event()
    local = LocalDetector(settings, rendering=rendering.is_set)
    local.detect((photos[0],), ("a person",), {}, None, {}, {})
    assert torch.get_num_threads() == len(os.sched_getaffinity(0))  # the video waits for it alone
    rendering.set()
    local.detect((photos[1],), ("a person",), {}, None, {}, {})
    assert torch.get_num_threads() == 1  # detector.num_cpus: the renders keep the others
    rendering.clear()
    local.detect((photos[0], photos[1]), ("a person",), {}, None, {}, {}, on_source=lambda uri, found: None)
    assert torch.get_num_threads() == 1  # a streamed video's first tasks start beside it


def test_missing_checkpoint_says_what_was_looked_for_and_how_to_supply_it(tmp_path):
    missing = tmp_path / "nope.bin"
    with pytest.raises(WeightsUnavailable) as e:
        load(cfg(pretrained=str(missing)))
    msg = str(e.value)
    assert "\n" not in msg and str(missing) in msg and "detector=saliency" in msg


def test_uncached_tag_fails_fast_offline():
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as e:
        load(cfg(model="ViT-B-32", pretrained="laion2b_s34b_b79k"))
    assert time.perf_counter() - t0 < 30
    assert "ViT-B-32/laion2b_s34b_b79k" in str(e.value) and "\n" not in str(e.value)


def test_unknown_tag_and_model_name_mismatch(tiny_clip):
    with pytest.raises(WeightsUnavailable, match="'nonsense' is not a tag of ViT-B-32"):
        load(cfg(model="ViT-B-32", pretrained="nonsense"))
    with pytest.raises(WeightsUnavailable, match="detector.model: 'other' is not the model"):
        load(cfg(model="other", model_config=tiny_clip["detector.model_config"],
                 pretrained=tiny_clip["detector.pretrained"]))


def test_fallback_is_loud_and_recorded(tmp_path, caplog):
    c = cfg(pretrained=str(tmp_path / "nope.bin"), fallback="saliency")
    found, info = detect_all(c, ("sample:chelsea",), ("a cat",))
    subjects = expand(found)
    assert info.detector == "saliency" and str(tmp_path / "nope.bin") in info.fallback_reason
    assert info.clip_loads == 0
    assert subjects["sample:chelsea"].method == "saliency"
    assert any("FALLING BACK TO SALIENCY" in r.getMessage() for r in caplog.records)


def test_batched_detection_finds_what_one_image_at_a_time_finds(tiny_clip):
    """Sixteen sources through one forward pass give the subjects that sixteen passes give."""
    c = cfg(model="tiny-clip", model_config=tiny_clip["detector.model_config"],
            pretrained=tiny_clip["detector.pretrained"])
    sources = tuple(f"sample:{n}" for n in ("astronaut", "chelsea", "coffee", "rocket", "cat", "camera"))
    one, info1 = detect_all(OmegaConf.merge(c, {"batch_size": 1}), sources, ("a person", "an animal"))
    many, info16 = detect_all(OmegaConf.merge(c, {"batch_size": 16}), sources, ("a person", "an animal"))
    assert info1.device == info16.device == "cpu" and info16.clip_loads == 1
    for uri in sources:
        a, b = one[uri].subject(), many[uri].subject()
        assert a.box == pytest.approx(b.box, abs=2) and a.size == b.size
        overlap = np.logical_and(a.mask > 0, b.mask > 0).sum() / max(np.logical_or(a.mask > 0, b.mask > 0).sum(), 1)
        assert overlap > 0.98, uri


def test_two_detectors_in_one_process_each_count_their_own_model_load(tiny_clip):
    """Loads are counted by whoever owns the detector, not by the process: a detector actor's
    later call uses the model it has (no load), and a second one in the same process counts its own."""
    from raypipe.detection.detector import DetectorActor

    c = cfg(model="tiny-clip", model_config=tiny_clip["detector.model_config"],
            pretrained=tiny_clip["detector.pretrained"])
    first, second, heard = DetectorActor(), DetectorActor(), []
    _, a = first.detect(c, ("sample:astronaut",), ("a person",), on_load=heard.append)
    _, again = first.detect(c, ("sample:coffee",), ("a person",), on_load=heard.append)
    _, b = second.detect(c, ("sample:astronaut",), ("a person",))
    assert (a.clip_loads, again.clip_loads, b.clip_loads) == (1, 0, 1) and heard == [1]
    assert first.loads.count == second.loads.count == 1


def fetched(folder):
    """The copies a node fetched, by name (its locks aside)."""
    return sorted((p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)


def test_weights_on_s3_load_from_a_copy_fetched_once_per_node_and_a_missing_one_is_refused_first(
        tiny_clip, s3, tmp_path, monkeypatch):
    """A cluster's nodes cannot read the driver's paths: weights and config on storage every
    node reaches are fetched into the node's cache once, and a checkpoint that is not there
    is refused by the checks before any work, naming the field and the URI."""
    from pathlib import Path

    from raypipe.detection.settings import validate
    from raypipe.errors import JobError

    _, client = s3
    monkeypatch.setenv("RAYPIPE_CACHE_DIR", str(tmp_path / "node"))
    for key in ("detector.pretrained", "detector.model_config"):
        client.put_object(Bucket="renders", Key=f"weights/{Path(tiny_clip[key]).name}",
                          Body=Path(tiny_clip[key]).read_bytes())
    c = cfg(model="tiny-clip", model_config="s3://renders/weights/tiny-clip.json",
            pretrained="s3://renders/weights/open_clip_pytorch_model.bin")
    validate(c)
    found, info = detect_all(c, ("sample:astronaut",), ("a person",))
    assert info.detector == "clip:tiny-clip/open_clip_pytorch_model.bin" and info.clip_loads == 1
    assert found["sample:astronaut"].subject().box
    copies = fetched(tmp_path / "node" / "weights")
    assert [p.name for p in copies] == ["open_clip_pytorch_model.bin", "tiny-clip.json"]
    assert copies[0].read_bytes() == Path(tiny_clip["detector.pretrained"]).read_bytes()
    times = [p.stat().st_mtime_ns for p in copies]
    load(c)  # the node's next load reads its copies
    assert [p.stat().st_mtime_ns for p in fetched(tmp_path / "node" / "weights")] == times
    with pytest.raises(JobError) as e:
        validate(cfg(pretrained="s3://renders/weights/none.bin"))
    assert str(e.value).startswith("detector.pretrained: no checkpoint file at s3://renders/weights/none.bin; ")
    assert "\n" not in str(e.value)


def test_weights_on_a_store_that_cannot_be_reached_fail_in_one_line_and_no_fallback_sticks(tiny_clip, s3, monkeypatch):
    """A blip of the store: the detection keys' lookup fails naming the field, in one line;
    the fallback to saliency it caused lasts until the store answers again, not for the
    process's life; and a batch's rows share one lookup of a found object."""
    from pathlib import Path

    from raypipe.detection import settings
    from raypipe.detection.cache import detection_keys
    from raypipe.detection.detector import resolve_kind

    _, client = s3
    client.put_object(Bucket="renders", Key="weights/blip.bin", Body=Path(tiny_clip["detector.pretrained"]).read_bytes())
    c = cfg(model="tiny-clip", pretrained="s3://renders/weights/blip.bin", fallback="saliency")
    real = settings.resolve

    def down(uri):
        raise OSError("When getting information for key 'weights/blip.bin': AWS Error NETWORK_CONNECTION\nretries: 3")

    monkeypatch.setattr(settings, "resolve", down)
    with pytest.raises(JobError) as e:
        detection_keys(c, "clip", ("sample:coffee",), (), {}, {"sample:coffee": "id"})
    assert e.value.where == "detector.pretrained" and "NETWORK_CONNECTION" in str(e.value) and "\n" not in str(e.value)
    assert resolve_kind(c)[0] == "saliency"
    asked = []
    monkeypatch.setattr(settings, "resolve", lambda uri: asked.append(uri) or real(uri))
    assert resolve_kind(c) == ("clip", None)  # the store answers again: CLIP
    for _ in range(20):  # rows
        resolve_kind(c)
        detection_keys(c, "clip", ("sample:coffee",), (), {}, {"sample:coffee": "id"})
    assert asked == ["s3://renders/weights/blip.bin"]
