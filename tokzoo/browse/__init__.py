"""The dataset browser: a static site of every sample, modality and reconstruction (``tokzoo browse``).

catalog.py (what a token dataset or raw shards hold, shard by shard), render.py (a chunk of samples ->
images + JSON), pictures.py (crop boxes, token grids, frequency plots), site.py (the build, views,
incremental reuse), assets/ (the pages and their script), chromium.py (headless Chromium over the
DevTools pipe, to check a built site). Imports tokzoo.pipeline, tokzoo.io and tokzoo.tokenizers.evaluation; nothing
imports it but the CLI.
"""

from .site import BuildSummary, build_site

__all__ = ["BuildSummary", "build_site"]
