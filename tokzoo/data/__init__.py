"""Token dataset loader for trainers: zipped modalities, consistent crops, int64 batches, DDP/worker splits.

``make_loader(root, ["rgb", "depth"], batch_size=256, num_workers=4)`` over a folder written by
``tokzoo tokenize`` (layout in docs/ARCHITECTURE.md). Shards are memory-mapped and read as numpy views
(:mod:`tokzoo.data.shards`); the split across ranks and workers is in :mod:`tokzoo.data.plan`.
"""

from .shards import Shard, count_members, open_shard

__all__ = ["TokenDataset", "make_loader", "Shard", "open_shard", "count_members"]


def __getattr__(name: str):  # the loader imports torch; reading shards alone (tokzoo inspect) does not need it
    if name in ("TokenDataset", "make_loader"):
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'tokzoo.data' has no attribute {name!r}")
