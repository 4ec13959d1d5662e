"""raypipe: a subject-aware video renderer that scales from a laptop to a Ray cluster.

`raypipe.render`, `raypipe.detect` and `raypipe.preview` are the CLI's commands as functions
(see `raypipe.api`); they are imported on first use, so that `import raypipe` stays light
for the segment workers, which import this package too. The errors they raise are in
`raypipe.errors`; `raypipe.RaypipeError` is the one to catch.
"""

_API = ("render", "detect", "preview", "render_batch", "Result", "Detected", "RaypipeError")


def __getattr__(name: str):
    if name in _API:
        from raypipe import api

        return getattr(api, name)
    raise AttributeError(f"module 'raypipe' has no attribute {name!r}")
