"""Scale-out engine: the tokenize and pseudo-label jobs on a Ray cluster (docs/SCALE_OUT.md).

The jobs stay what they are locally (:mod:`tokzoo.pipeline`, :mod:`tokzoo.pipeline.pseudo_label`): the same plan of
units (one input shard -> one output shard per modality), the same per-shard builder, the same journaled
writer. Only the step that turns units into shards is swapped, img2dataset-style, for a distributor:

- decode + crops of one input shard run as a Ray CPU task (:func:`~tokzoo.scale.tokenize.prepare_shard`);
- encoders / labelers run in actors that load their models once and take whole shards in batches
  (``num_gpus=1`` each with ``--gpus N``);
- the driver commits each finished shard with the local writer, so OUT is byte-identical to the local engine's.

Ray core tasks and actors are used rather than Ray Data: the unit of work is a whole shard whose samples must
stay in input order and be batched exactly as locally (byte-identical output), and resume and accounting are
per shard; Ray Data's row/block streams would have to be regrouped into shards again. Imports run one way:
this package imports the pipeline, never the reverse: the CLI makes a :class:`~tokzoo.scale.engine.RayEngine` for
``--engine ray`` and hands it to the job. Ray is imported only then.
"""

from __future__ import annotations

from tokzoo.errors import ConfigError

INSTALL_HINT = "--engine ray needs Ray, which is not installed; install it with: pip install 'tokzoo[ray]'"


def require_ray():
    """The ``ray`` module, or a one-line ConfigError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    return ray
