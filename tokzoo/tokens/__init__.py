"""The token dataset: its layout and its one reader (what ``tokzoo tokenize`` writes, trainers and tools read).

- :mod:`.layout`: file names, the manifest, status tables, completion markers, reading a shard's members;
- :mod:`.manifest`: the manifest a run writes (entries added, counts filled in, may a run add to OUT);
- :mod:`.tars`: a shard's bytes (deterministic ``np.save`` members in a tar);
- :mod:`.shards`: a shard memory-mapped as one numpy view (:class:`Shard`);
- :mod:`.spec`: what a trainer knows about each modality (:class:`~.spec.ModalitySpec`);
- :mod:`.loader`: batches for trainers (``make_loader``, :class:`TokenDataset`), split by :mod:`.plan`;
- :mod:`.tokenizer`: the tokenizer a manifest entry names, hash-checked;
- :mod:`.foreign`: the hook through which plug-ins make other tools' layouts readable (tokzoo.fourm: ml-4m's).
"""

__all__ = ["TokenDataset", "make_loader", "Shard", "open_shard", "count_members"]


def __getattr__(name: str):  # imported when used: the loader needs torch, the shards numpy, the layout hook neither
    if name in ("TokenDataset", "make_loader"):
        from . import loader

        return getattr(loader, name)
    if name in ("Shard", "open_shard", "count_members"):
        from . import shards

        return getattr(shards, name)
    raise AttributeError(f"module 'tokzoo.tokens' has no attribute {name!r}")
