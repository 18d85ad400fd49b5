"""The query layer: pure functions over an immutable snapshot and an encoder.

| module | job |
| --- | --- |
| ``engine`` | the entry points: ``search_texts``, ``search_vectors``, ``to_hits``; checks; grouping by document |
| ``plaid`` | PLAID stages over a compressed index (centroid scores, candidates, pruned interaction, exact MaxSim) |
| ``candidates`` | candidates from stored first stages (one, or fused by RRF), reranked by exact MaxSim |
| ``exact`` | exact MaxSim over uncompressed vectors in memory (``InMemoryIndex``'s engine) |
| ``rerank`` | ``rerank``: sort given passages by exact MaxSim (RAG) |
| ``settings`` | ``SearchSettings``: PLAID's knobs and their defaults per k |
| ``results`` | ``Hit`` (one result) and ``SearchResults`` (``[n, k]`` arrays) |

Every score comes from :mod:`colja.kernels` (one exact MaxSim per input form,
one top-k, one zero-row rule). Nothing here imports the facades
(:mod:`colja.searchable`) or keeps state between calls.
"""
