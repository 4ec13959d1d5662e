"""raypipe: a subject-aware video renderer that scales from a laptop to a Ray cluster."""


class RaypipeError(Exception):
    """An error the user can act on; its message is one line that names the field or file."""
