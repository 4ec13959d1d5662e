"""`python -m raypipe effects` lists exactly what a job accepts: every effect, transition and
caption option with its type, its default and one line of meaning, and nothing else. The
command prints raypipe.frames.catalog.listing(), which is read here in this process."""
import re
from dataclasses import MISSING, fields

import pytest
import yaml
from omegaconf import OmegaConf

from raypipe.config import CaptionCfg
from raypipe.frames import catalog
from raypipe.frames.effects import EFFECTS, make_params
from raypipe.frames.transitions import TRANSITIONS

pytestmark = pytest.mark.unit

ITEM = re.compile(r"  (\w+): (\S.*)")
OPTION = re.compile(r"    (\w+): (\S.*?) = (\S.*?)\s{2,}(\S.*)")


@pytest.fixture(scope="module")
def printed() -> tuple[dict, dict]:
    """The command's output read back: {section: {name: {option: (type, default, help)}}}, and
    what it says each name does."""
    out = catalog.listing() + "\n"  # as the command prints it
    listing, said, section, item = {}, {}, None, None
    for line in out.splitlines():
        if not line:
            continue
        if option := OPTION.fullmatch(line):
            name, kind, default, meaning = option.groups()
            listing[section][item][name] = (kind, yaml.safe_load(default), meaning)
        elif found := ITEM.fullmatch(line):
            item, said[item] = found.groups()
            listing[section][item] = {}
        else:
            assert not line.startswith(" "), f"a line that is neither an option nor a definition: {line!r}"
            section = line.split(":")[0]
            listing[section] = {}
    return listing, said


def defined(params) -> dict[str, tuple]:
    """Each field's type, default (a list's, made by its factory) and help."""
    return {f.name: (f.type, f.default_factory() if f.default is MISSING else f.default, f.metadata["help"])
            for f in fields(params)}


def test_the_listing_is_every_definition_with_its_parameters_and_defaults(printed):
    listing, said = printed
    assert listing == {
        "effects": {name: defined(e.params) for name, e in EFFECTS.items()},
        "transitions": {name: defined(t.params) for name, t in TRANSITIONS.items()},
        "captions": {"caption": defined(CaptionCfg)},
    }
    assert set(listing["effects"]) == {"static", "ken_burns", "punch_in", "pan", "reframe", "focus", "spotlight"}
    assert listing["effects"]["ken_burns"]["zoom"][:2] == ("float", 1.6)
    assert listing["transitions"]["wipe"]["direction"][:2] == ("str", "left")
    assert listing["captions"]["caption"]["box"][:2] == ("bool", False)
    assert said["zoom_through"] == "The camera flies into this shot's subject and out of the next one's."
    assert all(what.endswith(".") for what in said.values()), said


def test_every_listed_default_is_what_a_job_gets_when_it_leaves_the_option_out(printed):
    listing, _ = printed
    for section, registry, what in (("effects", EFFECTS, "effect"), ("transitions", TRANSITIONS, "transition")):
        for name, options in listing[section].items():
            listed = {option: default for option, (_, default, _) in options.items()}
            assert make_params(name, listed, registry, what) == make_params(name, {}, registry, what), name
    caption = {option: default for option, (_, default, _) in listing["captions"]["caption"].items()}
    assert caption == OmegaConf.to_container(OmegaConf.structured(CaptionCfg))
