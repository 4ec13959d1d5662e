"""A row of the table as a video: the template's config with the row's fields filled in,
its job merged, its output named, and every check a render makes, before any work."""
from __future__ import annotations

import functools
import logging
import os
import pickle
import posixpath
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from raypipe.batch.rows import Row
from raypipe.config import ASSETS, CURRENT_ROW, Config, hydra_error_line, unknown_key
from raypipe.errors import JobError, RaypipeError
from raypipe.media import generated
from raypipe.plan.layers import told_as
from raypipe.plan.timeline import Plan
from raypipe.plan.validate import prepare
from raypipe.plan.variants import Variant, check_all, named, variants
from raypipe.storage import Storage

log = logging.getLogger("raypipe")


@dataclass(frozen=True)
class Template:
    """What every row's config is made from: the batch's config and the rows file's folder."""

    cfg: DictConfig
    base: str


@dataclass
class Video:
    """A row to render. Its config and plan are held only while the batch works on the row
    (`load`, `unload`): a row's config is ~140 KB, and 10,000 rows of them 1.4 GB."""

    row: Row
    template: Template
    output: str  # where it is published, under the batch's root
    published: bool = False  # by an earlier run: its sources are not checked again
    cfg: DictConfig | None = None
    plan: Plan | None = None  # None until its sources are checked (`plan_video`)

    def load(self) -> DictConfig:
        """The row's config, made again as the checks before any work made it (they passed)."""
        if self.cfg is None:
            self.cfg = row_config(self.template.cfg, self.row, self.template.base)
            self.cfg.job.output = self.output
            for i in sorted(set(range(len(self.template.cfg.job.layers))) - set(self.keys().kept)):
                log.info("%s: job.layers[%d]: its text, from the row, is empty: not drawn", self.row.where, i)
        return self.cfg

    def keys(self, variant: Variant | None = None) -> Keys:
        return Keys(self.row, kept_layers(self.template.cfg, self.row), variant)

    def unload(self) -> None:
        self.cfg = self.plan = None


def plan_video(video: Video, run_root: str) -> Plan:
    """The checks that read the row's sources (every image decoded, every video probed): a
    batch runs them for each row just before detecting it, so that rendering begins while
    later rows are still checked; errors name the row."""
    keys = video.keys()
    try:
        plan, _ = prepare(video.load(), run_root)
    except RaypipeError as e:
        raise keys.error(e) from None
    video.plan = told_as(plan, keys)
    return video.plan


def plan_variant(video: Video, variant: Variant, run_root: str) -> Plan:
    """A variant of the row, checked and planned as `plan_video` plans a row; errors name the
    row, the variant and the key as the user wrote it."""
    keys = video.keys(variant)
    try:
        plan, _ = prepare(variant.cfg, run_root)
    except RaypipeError as e:
        raise keys.error(e) from None
    return told_as(plan, keys)


@dataclass(frozen=True)
class Keys:
    """How a row's errors and warnings name a key: after the row (and its variant), as the user
    wrote it. A variant's own layers are render.variants[i].layers; the template's layers that
    the row's video draws are those `kept` (`kept_layers`), under their own index; the layers
    that the row's job adds after them are the row's own: `row 3 (id elm).job.layers[0]`."""

    row: Row
    kept: tuple[int, ...]
    variant: Variant | None = None

    @property
    def lead(self) -> str:
        return self.row.where if self.variant is None else variant_where(self.row, self.variant.name)

    def __call__(self, where: str) -> str:
        if self.variant is not None and self.variant.own_layers:
            return f"{self.lead}: {self.variant.key(where)}"
        layer = re.fullmatch(r"job\.layers\[(\d+)\](.*)", where)
        if layer and int(layer.group(1)) >= len(self.kept):
            own = f"{self.row.where}.job.layers[{int(layer.group(1)) - len(self.kept)}]{layer.group(2)}"
            return own if self.variant is None else f"{own} (variant {self.variant.name})"
        if layer:
            where = f"job.layers[{self.kept[int(layer.group(1))]}]{layer.group(2)}"
        return f"{self.lead}: {where}"

    def error(self, e: RaypipeError) -> RaypipeError:
        if e.where and e.where.startswith("row "):
            return e
        return JobError(self(e.where) if e.where else self.lead, e.reason)


def kept_layers(template: DictConfig, row: Row) -> tuple[int, ...]:
    """The indices of the template's layers that the row's video draws: all but the text layers
    whose text, made of the row's fields, is empty (an optional price the row leaves out), which
    draw nothing."""
    token = CURRENT_ROW.set(row)
    try:
        return tuple(i for i, layer in enumerate(template.job.layers) if not _blank_text(layer))
    finally:
        CURRENT_ROW.reset(token)


def _blank_text(layer: DictConfig) -> bool:
    if not OmegaConf.is_interpolation(layer, "text"):
        return False  # a text the template wrote empty is the template's mistake, which fails as a job's does
    try:
        return layer.type == "text" and not str(layer.text).strip()
    except (OmegaConfBaseException, RaypipeError):
        return False  # its error is said where the row's config is made


def variant_where(row: Row, name: str) -> str:
    return f"{row.where} variant {name}"


def default_root(template: DictConfig) -> str:
    return os.path.abspath(os.path.join("batch", str(template.job.name)))


def _join(root: str, rel: str) -> str:
    return root.rstrip("/") + "/" + rel if "://" in root else os.path.join(root, rel)


def output_of(pattern: str, row: Row, root: str) -> str:
    """The row's video under `root`: the pattern filled from its plain fields, refused where it
    would leave the root (`..`, an absolute path) or is not a plain name."""
    fields = {k: v for k, v in row.fields.items() if isinstance(v, (str, int, float, bool))}
    fields["id"] = row.id
    try:
        rel = pattern.format_map(fields)
    except KeyError as e:
        raise JobError(f"{row.where}.{e.args[0]}", f"batch.output ({pattern}) names a field the row does not have") \
            from None
    except (ValueError, IndexError) as e:
        raise JobError("batch.output", f"{pattern!r} is not a name pattern ({e})") from None
    norm = posixpath.normpath(rel.replace("\\", "/"))
    if rel.startswith(("/", "~")) or "://" in rel or norm == ".." or norm.startswith("../") or "\0" in rel:
        raise JobError(f"{row.where}.output", f"{rel!r} would leave the batch's root {root}")
    if posixpath.basename(norm).startswith("."):  # `videos/.mp4` (an empty field), or a name the cache sweeps as a temp
        raise JobError(f"{row.where}.output", f"{rel!r} is not a plain file name (batch.output: {pattern})")
    return _join(root, norm)


def check_id(row: Row) -> None:
    """A row's id names its run folder (`videos/<id>`) and, by default, its video: a plain
    file name, so that no two rows share a folder (`y` and `y/`) and none is hidden."""
    rid = row.id
    if rid in (".", "..") or rid.startswith(".") or any(c in rid for c in "/\\") or \
            any(ord(c) < 32 for c in rid) or len(rid.encode()) > 200:
        raise JobError(f"{row.where}.id", f"must be a plain name of at most 200 bytes, not starting with a dot and "
                                          f"with no / or \\ (got {rid!r})")


FONT_FILES = (".ttf", ".otf", ".ttc", ".pfb", ".woff", ".woff2")


def _font_file(font: str | None) -> bool:
    """Whether a caption's or a layer's `font` names a file (a family name is fontconfig's)."""
    return bool(font) and ("/" in font or os.sep in font or font.lower().endswith(FONT_FILES))


def job_reads(job) -> list[tuple[str, str]]:
    """(key, URI) of everything a job's video reads: its sources, its layers' images and clips,
    its sound, and fonts given as files, which a row's or a request's own job may name."""
    segments = job.segments
    return [*((f"job.segments[{i}].source", s.source) for i, s in enumerate(segments)),
            *((f"job.segments[{i}].caption.font", s.caption.font) for i, s in enumerate(segments)
              if s.caption is not None and _font_file(s.caption.font)),
            *layer_reads(job.layers, "job.layers"),
            *((("job.audio.path", job.audio.path),) if job.audio.path else ()),
            *((f"job.audio.tracks[{i}].path", t.path) for i, t in enumerate(job.audio.tracks))]


def layer_reads(layers, at: str) -> list[tuple[str, str]]:
    """(key, URI) of the images, clips and font files that `layers` (written at `at`) read."""
    return [*((f"{at}[{i}].source", x.source) for i, x in enumerate(layers) if x.source),
            *((f"{at}[{i}].font", x.font) for i, x in enumerate(layers) if _font_file(x.font))]


def _allowed(uri: str, roots: list[str]) -> bool:
    """Whether a row's source lies under one of `roots`. A URI must name a plain path: pyarrow
    takes options from a URI's query (`?endpoint_override=` would point the driver's S3
    client at a host of the row's choosing), and a `..` (percent-encoded or not) in a
    file:// URI leaves the root. A local path (file:// too) is compared where it really is,
    links followed."""
    if generated(uri):
        return True
    local = [r for r in roots if "://" not in r] + [r.split("://", 1)[1] for r in roots if r.startswith("file://")]
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        if "?" in rest or "#" in rest or {".", ".."} & set(unquote(rest).split("/")):
            return False
        if scheme != "file":
            return any(uri.startswith(r.rstrip("/") + "/") for r in roots if "://" in r)
        if not rest.startswith("/"):  # file://HOST/...: another machine's file, or a relative one
            return False
        uri = unquote(rest)
    real = os.path.realpath(uri)
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep)
               for r in [os.path.realpath(r) for r in local] + [os.path.realpath(ASSETS)])


def _cause(e: BaseException) -> RaypipeError | None:
    while e is not None:
        if isinstance(e, RaypipeError):
            return e
        e = e.__cause__ or e.__context__
    return None


@functools.lru_cache(maxsize=1)
def _schema() -> DictConfig:
    """The structured config, made once: making it is 32 ms, a third of a row's config
    (merge copies it, so rows never share a node)."""
    return OmegaConf.structured(Config)


_INTERPOLATION = re.compile(r"(\\*)\$\{")


def _literal(value):
    """A resolved value as OmegaConf must be given it to keep it as it is: every `${` left in it
    is text (a row's `${oc.env:AWS_SECRET_ACCESS_KEY}` for an address), which a merge would
    otherwise resolve on the driver, into the video."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", value)
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_literal(v) for v in value]
    return value


def _shape(value):
    """The keys and list lengths of a value, all the way down, with its leaves left out."""
    if isinstance(value, dict):
        return "{", tuple((k, _shape(v)) for k, v in value.items())
    if isinstance(value, list):
        return "[", tuple(_shape(v) for v in value)
    return None


def _copy(cfg: DictConfig) -> DictConfig:
    """A config that shares no node with `cfg`, flags and types kept: a pickle's round trip
    is 2.5 ms for a listing row's config, where copy.deepcopy walks every node in Python (9 ms)."""
    return pickle.loads(pickle.dumps(cfg, protocol=pickle.HIGHEST_PROTOCOL))


class _Typed:
    """`OmegaConf.merge(_schema(), data)`: a row's values checked against the schema and typed.
    A merge makes and checks every node, ~50 ms for a row of four segments (10,000 rows: 8
    minutes before any work). Rows of one table mostly share a shape, so a row is made from a
    copy of the last config of its shape, assigned the values in which the two differ: an
    assignment checks and converts its value as the merge would; a value it refuses is given
    to the merge, so that a row's error reads the same whichever row came first."""

    def __init__(self, shapes: int = 16):
        self._made: OrderedDict = OrderedDict()  # shape -> (its data, its config), least recent first
        self._shapes = shapes
        self._lock = threading.Lock()  # the checks and the look thread make rows

    def __call__(self, data: dict) -> DictConfig:
        shape = _shape(data)
        with self._lock:
            made = self._made.get(shape)
            if made is not None:
                self._made.move_to_end(shape)
        if made is None:
            cfg = OmegaConf.merge(_schema(), data)
            with self._lock:
                self._made[shape] = (data, _copy(cfg))
                while len(self._made) > self._shapes:
                    self._made.popitem(last=False)
            return cfg
        before, cfg = made
        cfg = _copy(cfg)
        try:
            _assign(cfg, before, data)
        except OmegaConfBaseException:  # refused as the merge refuses it, in the merge's words
            return OmegaConf.merge(_schema(), data)
        return cfg


def _assign(node, before, after) -> None:
    for key, value in after.items() if isinstance(after, dict) else enumerate(after):
        was = before[key]
        if isinstance(value, (dict, list)):
            _assign(node[key], was, value)
        elif type(value) is not type(was) or value != was:
            node[key] = value


_typed = _Typed()


def row_config(template: DictConfig, row: Row, base: str) -> DictConfig:
    """The template with ${row:NAME} read from the row, the row's `job` merged over the job
    section (its `layers` after the template's, so drawn over them; `Keys` names them as the row
    has them), and `batch.each` made into segments: the template's own, the listed ones, then
    `batch.each.after`'s. Relative sources are the rows file's folder's (`base`),
    as a row names them from there."""
    token = CURRENT_ROW.set(row)
    try:
        data = OmegaConf.to_container(template, resolve=True)
    except OmegaConfBaseException as e:
        cause = _cause(e)
        raise cause if cause is not None else JobError(row.where, hydra_error_line(e)) from None
    finally:
        CURRENT_ROW.reset(token)
    each = data["batch"]["each"]
    if each["list_field"]:
        effects = each["effects"] or ["static"]
        for i, source in enumerate(row.items(each["list_field"])):
            segment = {"source": source, "duration": each["duration"], "effect": effects[i % len(effects)]}
            if each["transition"]:
                segment["transition"] = {"type": each["transition"], "duration": each["transition_duration"]}
            if i == 0 and each["caption"]:
                segment["caption"] = {"text": each["caption"]}
            data["job"]["segments"].append(segment)
        if data["job"]["segments"] and each["transition"] and not each["after"]:
            data["job"]["segments"][-1].pop("transition", None)  # the last segment has nothing to go into
    data["job"]["segments"].extend(each["after"])  # an end card, after the listed photos
    own, keys = dict(row.job or {}), Keys(row, kept_layers(template, row))
    data["job"]["layers"] = [data["job"]["layers"][i] for i in keys.kept]
    if isinstance(own.get("layers"), list):  # drawn over the template's (its address, its logo), not instead
        data["job"]["layers"] = [*data["job"]["layers"], *own.pop("layers")]
    try:
        cfg = _typed(_literal(data))
        if own:  # its other keys replace the template's, its segments all of them
            cfg.job = OmegaConf.merge(cfg.job, OmegaConf.create(_literal(own)))
    except OmegaConfBaseException as e:  # OmegaConf names a key in a list's item from the item down: found by its path
        found = unknown_key(data) or unknown_key({"job": own})
        if found is None:
            raise JobError(row.where, hydra_error_line(e)) from None
        where, _, reason = found.partition(": ")
        raise JobError(keys(where), reason) from None
    for node in (*cfg.job.segments, *cfg.job.layers, *(x for v in cfg.render.variants for x in v.layers or ())):
        if node.source and "://" not in node.source and not generated(node.source):
            node.source = os.path.join(base, os.path.expanduser(node.source))
    return cfg


class Published:
    """Whether an earlier run published an output: each folder of outputs is listed once (on
    S3 a request per 1,000 names), not asked about for each row (a request per row)."""

    def __init__(self):
        self._names: dict[str, set[str]] = {}

    def __call__(self, output: str) -> bool:
        folder, name = os.path.split(output)
        if folder not in self._names:
            self._names[folder] = {path.rsplit("/", 1)[-1] for path, _, _ in Storage(folder).files(recursive=False)}
        return name in self._names[folder]


def check(template: DictConfig, row: Row, root: str, base: str, allowed: list[str], run_root: str,
          published: Published | None = None, sources: bool = True) -> Video:
    """Every check a render makes, for one row (`sources=False`: all but those that read its
    sources, left to `plan_video`); errors name the row. Neither its config nor its plan is
    kept. A row whose video an earlier run
    published is only named and placed: a rerun makes none of its configs and reads none of
    its sources."""
    try:
        output = output_of(str(template.batch.output), row, root)
        check_id(row)
        if published is not None and published(output):
            return Video(row, Template(template, base), output, published=True)
        cfg = row_config(template, row, base)
        cfg.job.output = output
        made = variants(cfg)
        for where, uri in [*job_reads(cfg.job), *(read for v in made if v.own_layers
                                                  for read in layer_reads(v.cfg.job.layers, v.layers_at))]:
            if not _allowed(uri, allowed):
                raise JobError(where, f"{uri} is outside batch.allowed_roots ({', '.join(allowed)})")
        check_all(cfg, made)
    except RaypipeError as e:
        raise Keys(row, kept_layers(template, row)).error(e) from None
    video = Video(row, Template(template, base), output, cfg=cfg)
    if sources and made:  # the row's videos are its variants, each planned at its size with its layers
        for v in made:
            v.cfg.job.output = named(output, v.name)
            plan_variant(video, v, run_root)
    elif sources:
        plan_video(video, run_root)
    video.unload()  # made again when the batch comes to the row; a dry run of 10,000 rows holds none
    return video
