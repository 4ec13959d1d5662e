"""A batch's rows: one video each, read from CSV, JSONL or Parquet (a path or a URI, through
pyarrow.fs like every other read). Rows come from people: values are checked before use,
and every error names the row."""
from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from raypipe.errors import JobError
from raypipe.storage import resolve

FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet")
# A CSV cell that holds a list (`batch.each.list_field`): items separated by this.
LIST_SEP = "|"
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class Row:
    number: int  # 1 for the first row of the table
    id: str
    fields: Mapping  # the row as read, `job` aside
    job: Mapping | None  # merged over the template's job section
    csv: bool  # list fields are `|`-separated text

    @property
    def where(self) -> str:
        return f"row {self.id}" if self.id == str(self.number) else f"row {self.number} (id {self.id})"

    def value(self, name: str, *default):
        """A scalar field, for ${row:NAME}: a missing field or one that is not a plain value
        is an error naming the row and the field. Given a default (${row:NAME,DEFAULT}), a
        missing, null or blank field is the default."""
        if default and (self.fields.get(name) is None or str(self.fields[name]).strip() == ""):
            return default[0]
        if name not in self.fields:
            known = ", ".join(sorted(self.fields)) or "none"
            raise JobError(f"{self.where}.{name}", f"no such field (the row has: {known})")
        v = self.fields[name]
        if v is None or not isinstance(v, _SCALARS):
            raise JobError(f"{self.where}.{name}", f"must be a plain value, got {type(v).__name__}: {_short(v)}")
        return v

    def items(self, name: str) -> list[str]:
        """A list field (batch.each.list_field): a list, or in CSV `a.jpg|b.jpg`."""
        if name not in self.fields:
            raise JobError(f"{self.where}.{name}", "no such field (batch.each.list_field names it)")
        v = self.fields[name]
        if isinstance(v, str):
            items = [s.strip() for s in v.split(LIST_SEP)] if self.csv or LIST_SEP in v else [v]
        elif isinstance(v, (list, tuple)):
            items = list(v)
        else:
            raise JobError(f"{self.where}.{name}", f"must be a list of sources, got {type(v).__name__}")
        bad = [x for x in items if not isinstance(x, str) or not x]
        if bad or not items:
            raise JobError(f"{self.where}.{name}", f"must be a non-empty list of sources (got {_short(v)})")
        return items


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def read_rows(uri: str) -> list[Row]:
    """Every row of the table; ids from an `id` field, else the row's number."""
    ext = os.path.splitext(uri.split("?")[0])[1].lower()
    if ext not in FORMATS:
        raise JobError("batch.rows", f"{uri}: a table must be {', '.join(FORMATS)}")
    try:
        fs, path = resolve(uri)
        with fs.open_input_file(path) as f:
            data = f.read()
    except (OSError, ValueError) as e:
        raise JobError("batch.rows", f"cannot read {uri}: {str(e).splitlines()[0]}") from None
    if ext == ".csv":
        records = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    elif ext == ".parquet":
        import pyarrow.parquet as pq

        records = pq.read_table(io.BytesIO(data)).to_pylist()
    else:
        records = []
        for n, line in enumerate(data.decode("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise JobError("batch.rows", f"{uri}, line {n}: not JSON ({e.msg})") from None
    rows = []
    for number, record in enumerate(records, 1):
        if not isinstance(record, Mapping):
            raise JobError("batch.rows", f"{uri}, row {number}: must be an object of fields")
        fields = {k: v for k, v in record.items() if k != "job"}
        job = record.get("job")
        if job is not None and not isinstance(job, Mapping):
            raise JobError(f"row {number}.job", f"must be a mapping merged over the template's job (got {_short(job)})")
        rid = fields.get("id")
        if rid in (None, ""):
            rid = str(number)
        elif not isinstance(rid, (str, int)):
            raise JobError(f"row {number}.id", f"must be a plain value (got {_short(rid)})")
        rows.append(Row(number, str(rid), fields, job, ext == ".csv"))
    if not rows:
        raise JobError("batch.rows", f"{uri} has no rows")
    ids = {}
    for r in rows:
        if r.id in ids:
            raise JobError(f"row {r.number}.id", f"{r.id!r} is also row {ids[r.id]}'s id; ids must be unique")
        ids[r.id] = r.number
    return rows
