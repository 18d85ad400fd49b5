"""``ShardedIndex``: one collection in ``N`` ordinary indexes, searched as one.

>>> from colja.distributed import ShardedIndex
>>> index = ShardedIndex.build(texts, "indexes/big", shards=4, model=model)   # or colja.distributed.build(...)
>>> index = ShardedIndex.load("indexes/big")                                  # shards in threads
>>> index = ShardedIndex.load("indexes/big", ray_address="auto")              # shards in Ray actors
>>> index.search("日本一高い山は？", k=10)

It satisfies the searchable contract (:mod:`colja.searchable.contract`). A
search encodes its queries once, asks every shard for its top ``k`` (same
options, filter and first stages), and merges by exact score: ties go to
the smaller global passage id (``shard << 40 | shard's pid``: shard first,
then pid), so equal inputs give equal rankings. A document (and every
passage split from it) lives on one shard, ``blake2b(id) mod N``
(:mod:`colja.distributed.routing`), so ``group_by_doc`` and ``where=`` give
what one index of the whole collection would. ``add`` routes each document
to its shard; ``delete`` / ``update`` go to the shards that hold the ids.
Each shard's write is crash-safe on its own; a write spanning several shards
is checked on all of them first, then applied shard by shard.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from colja._validation import check_texts
from colja.distributed.layout import read_manifest, shard_name
from colja.distributed.routing import global_pids, shard_of, split_pid
from colja.distributed.shards import LocalShards, RayShards
from colja.errors import CollectionError, ModelLoadError, UnknownDocumentError
from colja.index.collection import check_doc_ids
from colja.index.documents import check_id_list
from colja.model.encoder import resolve_model
from colja.search.engine import as_query_tensor, check_k, check_query
from colja.search.results import Hit, SearchResults


class ShardedHits(list):
    """The hits of one query (a ``list[Hit]``); ``partial`` is True when shards were left out
    (``allow_partial=True``), and ``missing_shards`` names them."""

    partial: bool = False
    missing_shards: tuple[int, ...] = ()


class ShardedResults(SearchResults):
    """:class:`~colja.SearchResults` with ``partial`` / ``missing_shards`` (see :class:`ShardedHits`)."""

    partial: bool = False
    missing_shards: tuple[int, ...] = ()


class ShardedIndex:
    """A collection split over ordinary indexes (shards) under one folder, with the ``Index`` API."""

    def __init__(self, path: Path, manifest: dict[str, Any], shards: LocalShards | RayShards, *,
                 model: Any = None, allow_partial: bool = False):
        self.path = Path(path)
        self.manifest = manifest
        self.shards = shards
        self.allow_partial = allow_partial
        self._model = None if isinstance(model, (str, os.PathLike)) or model is None else model
        self._model_name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else None
        info, _ = shards.call_all("info")
        self._info = [info[i] for i in range(len(shards))]
        self.dim = int(self._info[0]["dim"])

    # ------------------------------------------------------------------ open

    @classmethod
    def load(cls, path: str | os.PathLike, *, model: Any = None, mmap: bool = False, ray_address: str | None = None,
             use_ray: bool | None = None, allow_partial: bool = False, max_restarts: int = 1,
             timeout_s: float | None = None, device: Any = None) -> "ShardedIndex":
        """Open the sharded index at ``path`` (its ``sharded.json`` and shard folders).

        Without ``ray_address`` (and ``use_ray``) the shards are opened here and
        searched in threads. ``ray_address`` (``"auto"``, ``"ray://head:10001"``)
        or ``use_ray=True`` (a local Ray, or the one already connected) puts each
        shard in a Ray actor: a call to a shard whose actor died is retried once
        on the actor Ray restarts (``max_restarts``), else raises
        :class:`~colja.errors.ShardError` naming the shard, or, with
        ``allow_partial=True``, answers from the other shards with
        ``hits.partial = True``. ``timeout_s``: how long to wait for a shard.
        """
        root = Path(path)
        manifest = read_manifest(root)
        paths = [os.fspath(root / name) for name in manifest["shards"]]
        if ray_address is not None or use_ray:
            shards: Any = RayShards(paths, address=ray_address, model=model if isinstance(model, (str, os.PathLike)) else None,
                                    mmap=mmap, max_restarts=max_restarts, timeout_s=timeout_s)
        else:
            shared = model if model is not None and not isinstance(model, (str, os.PathLike)) else None
            shards = LocalShards(paths, model=shared if shared is not None else model, mmap=mmap, device=device)
        try:
            return cls(root, manifest, shards, model=model, allow_partial=allow_partial)
        except BaseException:
            shards.close()
            raise

    @classmethod
    def build(cls, collection: Any, path: str | os.PathLike, *, shards: int = 2, **options: Any) -> "ShardedIndex":
        """Build a sharded index here, without Ray, and open it with local shards: centroids trained
        once on the whole collection's sample, then each shard encoded and written. ``options``:
        ``model``, ``doc_ids``, ``metadata``, ``nbits``, ``overwrite``, ``settings``, ``text_column``,
        ``batch_size``, ``show_progress`` and :class:`~colja.index.settings.IndexSettings` fields, as
        for ``Index.build`` (``split`` and ``first_stages`` are not supported for shards yet)."""
        from colja.distributed.build import build_local

        build_local(collection, path, shards=shards, **options)
        return cls.load(path, model=options.get("model"))

    # ------------------------------------------------------------------ what it is

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def first_stages(self) -> list[str]:
        return list(self._info[0]["first_stages"])

    @property
    def model(self) -> Any:
        """The encoder of text queries (given at load, or the shards' recorded model, loaded now)."""
        if self._model is None:
            name = self._model_name or (self._info[0].get("model") or {}).get("name_or_path")
            if not name:
                raise ModelLoadError("this sharded index records no model; pass one: "
                                     "ShardedIndex.load(path, model=ColBERT.from_pretrained(...))")
            self._model = resolve_model(name)
        return self._model

    def __len__(self) -> int:
        out, _ = self.shards.call_all("live")
        return sum(out.values())

    def shard_lengths(self) -> list[int]:
        """Live passages per shard."""
        out, _ = self.shards.call_all("live")
        return [out[i] for i in range(self.num_shards)]

    def __repr__(self) -> str:
        return f"ShardedIndex({str(self.path)!r}, shards={self.num_shards}, {type(self.shards).__name__})"

    # ------------------------------------------------------------------ search

    def search(self, query: str, k: int = 10, *, where: Mapping[str, Any] | None = None, group_by_doc: bool = False,
               **options: Any) -> list[Hit]:
        """As :meth:`colja.Index.search` (``first_stage``, ``candidates``, PLAID options), over every shard."""
        return self.search_batch([check_query(query)], k, where=where, group_by_doc=group_by_doc, **options)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, *, first_stage: str | Sequence[str] = "plaid",
                     candidates: int | None = None, where: Mapping[str, Any] | None = None,
                     group_by_doc: bool = False, **options: Any) -> list[list[Hit]]:
        """``search`` for several queries: encoded once here, searched on every shard, merged by score."""
        queries = check_texts(queries, what="queries")
        k = check_k(k)
        _check_option_names(options)
        if not queries:
            return []
        Q = self.model.encode_queries(queries)
        Qn = torch.as_tensor(Q).detach().cpu().float().numpy()
        found, missing = self.shards.call_all("search_texts", queries, Qn, k, first_stage, candidates, where,
                                              group_by_doc, dict(options), allow_partial=self.allow_partial)
        out = []
        for qi in range(len(queries)):
            pooled = [(h, s) for s, per_query in found.items() for h in per_query[qi]]
            pooled.sort(key=lambda hs: (-hs[0].score, hs[1], hs[0].pid))
            hits = ShardedHits(dataclasses.replace(h, rank=r, pid=int(global_pids(s, np.array([h.pid]))[0]))
                               for r, (h, s) in enumerate(pooled[:k], start=1))
            hits.partial, hits.missing_shards = bool(missing), tuple(missing)
            out.append(hits)
        return out

    def search_embeddings(self, Q: Any, k: int = 10, *, where: Mapping[str, Any] | None = None,
                          group_by_doc: bool = False, **options: Any) -> SearchResults:
        """As :meth:`colja.Index.search_embeddings`; the pids are global (``shard << 40 | pid``)."""
        Qt = as_query_tensor(Q, self.dim)
        k = check_k(k)
        _check_option_names(options)
        found, missing = self.shards.call_all("search_vectors", Qt.numpy(), k, where, group_by_doc, dict(options),
                                              allow_partial=self.allow_partial)
        n = Qt.shape[0]
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        pids = np.full((n, k), -1, dtype=np.int64)
        if found:
            all_scores = np.concatenate([found[s][0] for s in sorted(found)], axis=1)
            all_pids = np.concatenate([global_pids(s, found[s][1]) for s in sorted(found)], axis=1)
            for i in range(n):
                real = all_pids[i] >= 0
                sc, pi = all_scores[i][real], all_pids[i][real]
                order = np.lexsort((pi, -sc))[:k]
                scores[i, : len(order)], pids[i, : len(order)] = sc[order], pi[order]
        results = ShardedResults(scores, pids)
        results.partial, results.missing_shards = bool(missing), tuple(missing)
        return results

    def hits(self, results: SearchResults, i: int = 0, *, query_length: int | None = None) -> list[Hit]:
        """``Hit`` objects for query ``i`` of ``results`` returned by :meth:`search_embeddings`."""
        rows = [(int(p), float(s)) for p, s in zip(results.pids[i], results.scores[i]) if p >= 0]
        by_shard: dict[int, list[tuple[int, int, float]]] = {}
        for at, (pid, score) in enumerate(rows):
            shard, local = split_pid(pid)
            by_shard.setdefault(shard, []).append((at, local, score))
        placed: dict[int, Hit] = {}
        for shard, items in by_shard.items():
            got = self.shards.call(shard, "hits", [x[1] for x in items], [x[2] for x in items], query_length)
            for (at, _, _), hit in zip(items, got):
                placed[at] = dataclasses.replace(hit, rank=at + 1, pid=rows[at][0])
        return [placed[at] for at in range(len(rows))]

    def passage_vectors(self, pids: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Decompressed vectors of global ``pids``: ``(float32 [sum doclens, dim], doclens int64)``."""
        pids = [int(p) for p in (pids.tolist() if hasattr(pids, "tolist") else pids)]
        parts: list[torch.Tensor | None] = [None] * len(pids)
        lens = [0] * len(pids)
        by_shard: dict[int, list[int]] = {}
        for at, pid in enumerate(pids):
            by_shard.setdefault(split_pid(pid)[0], []).append(at)
        for shard, ats in by_shard.items():
            flat, doclens = self.shards.call(shard, "passage_vectors", [split_pid(pids[a])[1] for a in ats])
            for a, v in zip(ats, torch.from_numpy(np.array(flat)).split(doclens.tolist())):
                parts[a], lens[a] = v, int(v.shape[0])
        flat_all = torch.cat(parts) if parts else torch.empty(0, self.dim)
        return flat_all, torch.tensor(lens, dtype=torch.long)

    def all_pids(self) -> np.ndarray:
        """Every global passage id (deleted ones included), shard by shard."""
        info, _ = self.shards.call_all("info")
        return np.concatenate([global_pids(s, np.arange(info[s]["passages"])) for s in range(self.num_shards)])

    # ------------------------------------------------------------------ write

    def add(self, texts: Sequence[str] | None = None, doc_ids: Sequence[str] | None = None,
            metadata: Sequence[dict | None] | None = None, *, embeddings: Any = None, **options: Any) -> list[str]:
        """Add documents, each to the shard that owns its id; returns the ids (default: numbers after
        every number id in use on any shard). ``options``: those of :meth:`colja.Index.add`."""
        n = len(embeddings) if texts is None and embeddings is not None else None
        if texts is not None:
            if isinstance(texts, str):
                raise CollectionError("texts must be a list of str, got a single str; wrap it: add([text])")
            texts = list(texts)
            n = len(texts)
        if n is None:
            raise CollectionError("add needs texts or embeddings=")
        if n == 0:
            return []
        ids = check_doc_ids(list(doc_ids) if doc_ids is not None else None, n)
        if metadata is not None:
            metadata = list(metadata)
            if len(metadata) != n:
                raise CollectionError(f"metadata has {len(metadata)} entries for {n} documents")
            for j, m in enumerate(metadata):
                if m is not None and not isinstance(m, dict):
                    raise CollectionError(f"metadata[{j}] must be a dict or None, got {type(m).__name__}")
        if ids is None:
            info, _ = self.shards.call_all("info")
            start = max(sum(v["passages"] for v in info.values()), *(v["next_default_id"] for v in info.values()))
            ids = [str(start + j) for j in range(n)]
        owners = [shard_of(d, self.num_shards) for d in ids]
        groups: dict[int, list[int]] = {}
        for j, s in enumerate(owners):
            groups.setdefault(s, []).append(j)
        taken = [d for s, js in groups.items() for d in self.shards.call(s, "live_ids", [ids[j] for j in js])]
        if taken:
            raise CollectionError(f"{len(taken)} document id(s) are already in the index, e.g. {sorted(taken)[:5]}; "
                                  "use index.update(...) to replace documents (nothing was written)")
        emb = list(embeddings) if embeddings is not None else None
        for s, js in sorted(groups.items()):
            self.shards.call(s, "add", [texts[j] for j in js] if texts is not None else None, [ids[j] for j in js],
                             [metadata[j] for j in js] if metadata is not None else None,
                             [np.asarray(emb[j], dtype=np.float32) for j in js] if emb is not None else None, options)
        return ids

    def _owners(self, ids: list[str], verb: str) -> dict[int, list[str]]:
        found, _ = self.shards.call_all("live_ids", ids)
        owner: dict[str, int] = {}
        for s in sorted(found):
            for d in found[s]:
                owner.setdefault(d, s)
        lost = [d for d in ids if d not in owner]
        if lost:
            raise UnknownDocumentError(f"{len(lost)} document id(s) not in the index (or already deleted), "
                                       f"e.g. {lost[:5]}; nothing was {verb}")
        groups: dict[int, list[str]] = {}
        for d in ids:
            groups.setdefault(owner[d], []).append(d)
        return groups

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Delete documents on whichever shards hold them; unknown ids: nothing is deleted."""
        ids = check_id_list(doc_ids)
        if not ids:
            return 0
        groups = self._owners(ids, "deleted")
        return sum(self.shards.call(s, "delete", group) for s, group in sorted(groups.items()))

    def update(self, doc_ids: Sequence[str], texts: Sequence[str] | None = None,
               metadata: Sequence[dict | None] | None = None, *, embeddings: Any = None, **options: Any) -> None:
        """Replace documents in place on their shards (see :meth:`colja.Index.update`)."""
        ids = check_id_list(doc_ids)
        if not ids:
            return
        if isinstance(texts, str):
            raise CollectionError("texts must be a list of str, got a single str; wrap it: update([id], [text])")
        texts = list(texts) if texts is not None else None
        metadata = list(metadata) if metadata is not None else None
        embeddings = list(embeddings) if embeddings is not None else None
        for name, given in (("texts", texts), ("metadata", metadata), ("embeddings", embeddings)):
            if given is not None and len(given) != len(ids):
                raise CollectionError(f"{name} has {len(given)} entries for {len(ids)} document ids (nothing was updated)")
        position = {d: j for j, d in enumerate(ids)}
        for s, group in sorted(self._owners(ids, "updated").items()):
            js = [position[d] for d in group]
            self.shards.call(s, "update", group, [texts[j] for j in js] if texts is not None else None,
                             [metadata[j] for j in js] if metadata is not None else None,
                             [np.asarray(embeddings[j], dtype=np.float32) for j in js]
                             if embeddings is not None else None, options)

    def refresh(self) -> bool:
        """Pick up generations other writers committed on any shard; True if one changed."""
        out, _ = self.shards.call_all("refresh")
        return any(out.values())

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        self.shards.close()

    def __enter__(self) -> "ShardedIndex":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()



def _check_option_names(options: Mapping[str, Any]) -> None:
    """Unknown search options are a TypeError before any shard is asked (as ``Index`` does)."""
    from colja.search.settings import SearchSettings

    SearchSettings.from_overrides(dict(options))


def shard_paths(path: str | os.PathLike, num_shards: int) -> list[Path]:
    return [Path(path) / shard_name(i) for i in range(num_shards)]


__all__ = ["ShardedIndex", "ShardedHits", "ShardedResults", "shard_paths"]
