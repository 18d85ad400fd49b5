"""Helpers for the index tests: paths, synthetic clustered vectors, a fake encoder, exact MaxSim."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
SHARED = (REPO / ".." / "shared").resolve()
REFERENCE_INDEX = SHARED / "fixtures" / "colbert-tiny-ja" / "reference-index"
FIXTURE_MODEL = SHARED / "fixtures" / "colbert-tiny-ja" / "model"
JSQUAD_CORPUS = SHARED / "data" / "jsquad-dev" / "corpus.jsonl"


def clustered_docs(n_docs: int = 200, dim: int = 128, n_clusters: int = 40, seed: int = 0,
                   min_len: int = 4, max_len: int = 30, noise: float = 0.5) -> list[np.ndarray]:
    """Unit vectors around ``n_clusters`` random directions, ``min_len..max_len`` per passage."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    docs = []
    for _ in range(n_docs):
        n = int(rng.integers(min_len, max_len + 1))
        v = centers[rng.integers(0, n_clusters, n)] + noise * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
        docs.append((v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32))
    return docs


def exact_maxsim(Q: torch.Tensor, docs: list[torch.Tensor]) -> torch.Tensor:
    """float32 [n_q, n_docs]: Σ_q max_d q·d (plain loops; tiny inputs only)."""
    out = torch.zeros((Q.shape[0], len(docs)))
    for j, d in enumerate(docs):
        if d.shape[0]:
            out[:, j] = (Q.float() @ d.float().T).max(-1).values.sum(-1)
    return out


class FakeModel:
    """Stands in for ColBERT: deterministic unit vectors per character (plus [CLS]/[D]/[SEP])."""

    def __init__(self, dim: int = 128, name: str = "fake/model"):
        self.dim = dim
        self.name_or_path = name
        self.doc_maxlen = 64
        self.calls = 0
        self.max_texts = 0

        class _Settings:
            def to_dict(self_inner):
                return {"dim": dim, "doc_maxlen": 64, "kind": "fake"}

        self.settings = _Settings()

    def _vector(self, token: str) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "little")
        g = torch.Generator().manual_seed(seed)
        return torch.nn.functional.normalize(torch.randn(self.dim, generator=g), dim=0)

    def encode_queries(self, texts, batch_size=32, **_):
        """Like a query: [Q], its characters, padded with zero rows to 32 vectors."""
        out = torch.zeros((len(texts), 32, self.dim))
        for i, text in enumerate(texts):
            tokens = ["[CLS]", "[Q]"] + list(text)[:29] + ["[SEP]"]
            out[i, : len(tokens)] = torch.stack([self._vector(t) for t in tokens])
        return out

    def encode_documents(self, texts, batch_size=32, show_progress=None, return_flat=False, **_):
        self.calls += 1
        self.max_texts = max(self.max_texts, len(texts))
        docs = []
        for text in texts:
            tokens = ["[CLS]", "[D]"] + list(text)[: self.doc_maxlen - 3] + ["[SEP]"]
            docs.append(torch.stack([self._vector(t) for t in tokens]))
        if not return_flat:
            return docs
        return torch.cat(docs), torch.tensor([d.shape[0] for d in docs], dtype=torch.long)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), to prove nothing changed."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def save_docs_npz(file, docs) -> None:
    """Write per-passage vectors as one ``.npz`` (``flat`` + ``doclens``) for subprocess tests."""
    np.savez(file, flat=np.concatenate(docs), doclens=np.array([d.shape[0] for d in docs]))
