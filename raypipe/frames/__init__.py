"""Frame math: one object per effect and transition, captions. Pure functions of a frame's global index."""
