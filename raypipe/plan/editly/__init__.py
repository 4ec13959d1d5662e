"""Editly specs (mifi/editly, JSON5) read as raypipe jobs: `convert(path)`."""
from raypipe.plan.editly.convert import Converted, convert
from raypipe.plan.editly.spec import SUPPORTED, is_spec

__all__ = ["Converted", "convert", "SUPPORTED", "is_spec"]
