"""Where each key of a converted job came from in its Editly spec, so that what fails or warns
once the job renders (a photo that does not decode, a layer over a face) names the spec's path,
which the user wrote (`clips[0].layers[0].path`), not the job's (`job.segments[0].source`)."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from raypipe.errors import RaypipeError

log = logging.getLogger("raypipe")
# A job key as errors and warnings write it: job.segments[0].source, job.layers[3].
JOB_KEY = re.compile(r"\bjob(?:\.[A-Za-z_]\w*|\[\d+\])+")
_LAST = re.compile(r"(?:\.[A-Za-z_]\w*|\[\d+\])$")


@dataclass(frozen=True)
class Origins:
    keys: Mapping[str, str]  # a job key the conversion wrote -> the spec path it came from

    def name(self, key: str) -> str:
        """The spec's path for a job key: its own, or its nearest recorded parent's with the job
        key beside it (`clips[0].layers[0] (job.segments[0].params)`); the key as it is where
        nothing of it came from the spec."""
        part, parent = key, None
        while part != parent:
            if part in self.keys:
                return self.keys[part] if part == key else f"{self.keys[part]} ({key})"
            part, parent = _LAST.sub("", part), part
        return key

    def text(self, line: str) -> str:
        return JOB_KEY.sub(lambda m: self.name(m.group(0)), line)

    def renamed(self, e: RaypipeError) -> RaypipeError:
        """`e`, of its own class, its `where` and reason naming the spec's paths."""
        where = self.name(e.where) if e.where else None
        reason = self.text(e.reason)
        if (where, reason) == (e.where, e.reason):
            return e
        # Not through the class's constructor, whose parameters differ from class to class.
        named = type(e).__new__(type(e))
        named.__dict__.update(e.__dict__)
        RaypipeError.__init__(named, reason, where)
        return named

    @contextmanager
    def naming(self) -> Iterator[None]:
        """While rendering the spec's job: its errors re-raised and its warnings logged with the
        spec's paths."""
        spec_names = SpecNames(self)
        log.addFilter(spec_names)
        try:
            yield
        except RaypipeError as e:
            named = self.renamed(e)
            if named is e:
                raise
            raise named from e
        finally:
            log.removeFilter(spec_names)


class SpecNames(logging.Filter):
    """A filter on raypipe's logger that writes its records' job keys as the spec's paths."""

    def __init__(self, origins: Origins):
        super().__init__()
        self.origins = origins

    def filter(self, record: logging.LogRecord) -> bool:
        line = record.getMessage()
        named = self.origins.text(line)
        if named != line:
            record.msg, record.args = named, ()
        return True
