"""Beyond one machine: sharded indexes searched as one, and builds on a Ray cluster.

* :class:`ShardedIndex`: ``N`` ordinary indexes under one folder (``sharded.json``)
  with the ``Index`` API; shards in threads, or in Ray actors (``ray_address=``).
* :func:`build`: encode and compress on a Ray cluster (``pip install "colja[ray]"``),
  writing one ordinary index or ``N`` shards; resumable.

Ray is imported only when a Ray feature is used.
"""

from colja.distributed.build import build, build_local
from colja.distributed.layout import is_sharded
from colja.distributed.routing import shard_of
from colja.distributed.sharded import ShardedHits, ShardedIndex, ShardedResults

__all__ = ["ShardedIndex", "ShardedHits", "ShardedResults", "build", "build_local", "shard_of", "is_sharded"]
