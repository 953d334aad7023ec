"""`autodidact report RUN [RUN ...] --out report.html`: what happened in runs, without reading CSVs.

One self-contained HTML file (no network needed to view it): learning curves, success per task
beside OGBench's published rate, config and command, evaluation videos, the method's figures, and
with several runs a comparison table and overlaid curves. Run directories are only read.

Modules: `runinfo` (reading a run), `published` (OGBench's numbers), `charts` (inline SVG),
`media` (videos and pictures as data: URIs), `page` (the HTML).
"""

from autodidact.workflows.report.page import write_report

__all__ = ["write_report"]
