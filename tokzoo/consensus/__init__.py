"""Iterative consensus (Li et al., ICLR 2023) over generated modalities: a trained fm model proposes a depth
map, scorers of different expertise judge it per token region, the regions they agree on are kept as the
generator's conditioning and the rest is resampled (:mod:`.loop`). Baselines at equal generator calls: greedy
decoding and best-of-N reranking. Recipes: :mod:`.recipe`; scorers: :mod:`.scorers`; the small independent
depth networks: :mod:`.depthnet`; choosing the scorers' weights on validation scenes: :mod:`.tuning`.
tokzoo's core never imports this package.
"""

from .depthnet import DepthNet, DepthNetConfig, load_depth_net, save_depth_net, train_depth_net
from .loop import LoopResult, best_of_n, consensus_loop, gather_evidence, greedy
from .recipe import ConsensusRecipe, parse_recipe, read_recipe
from .scorers import SCORERS, Evidence, ensemble_errors, region_errors
from .tuning import choose_weights

__all__ = [
    "SCORERS",
    "ConsensusRecipe",
    "DepthNet",
    "DepthNetConfig",
    "Evidence",
    "LoopResult",
    "best_of_n",
    "choose_weights",
    "consensus_loop",
    "ensemble_errors",
    "gather_evidence",
    "greedy",
    "load_depth_net",
    "parse_recipe",
    "read_recipe",
    "region_errors",
    "save_depth_net",
    "train_depth_net",
]
