"""Seeing what a render does: preview, the detection sheet, report.html."""
