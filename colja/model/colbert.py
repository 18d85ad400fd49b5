"""The ColBERT encoder: a BERT backbone, a bias-free linear projection, L2 norm."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colja import kernels
from colja._atomic import write_json
from colja._progress import progress, progress_enabled
from colja._validation import check_texts
from colja._allocator import tune_cpu_allocator
from colja._warnings import warn_at_caller
from colja.errors import ModelLoadError, TruncationWarning
from colja.model import loading
from colja.model.settings import ColBERTSettings
from colja.model.precision import apply_precision, resolve_precision
from colja.model.tokenization import (
    SpecialIds,
    doc_sequences,
    pad_batch,
    punctuation_skiplist,
    query_length,
    query_tensors,
    resolve_special_ids,
    tokenize_text,
    wordpiece_ids,
)

logger = logging.getLogger("colja.model")

_DTYPES = {None: None, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           torch.float32: torch.float32, torch.float16: torch.float16, torch.bfloat16: torch.bfloat16}


class ColBERT(nn.Module):
    """A ColBERT encoder compatible with Stanford ``HF_ColBERT`` checkpoints.

    Build it with :meth:`from_pretrained`. ``encode_queries`` and
    ``encode_documents`` reproduce the reference implementation's vectors;
    ``forward`` gives differentiable token vectors for training.
    """

    def __init__(self, backbone: nn.Module, tokenizer, settings: ColBERTSettings, linear: nn.Linear | None = None, name_or_path: str | None = None):
        super().__init__()
        hidden = backbone.config.hidden_size
        self.bert = backbone
        self.linear = linear if linear is not None else nn.Linear(hidden, settings.dim, bias=False)
        if self.linear.bias is not None:
            raise ValueError("the ColBERT projection has no bias")
        if tuple(self.linear.weight.shape) != (settings.dim, hidden):
            raise ModelLoadError(
                f"linear.weight has shape {tuple(self.linear.weight.shape)}, expected [dim={settings.dim}, hidden={hidden}]"
            )
        self.tokenizer = tokenizer
        self.settings = settings
        self.name_or_path = name_or_path
        self.special_ids: SpecialIds = resolve_special_ids(tokenizer, settings)
        self.skiplist: frozenset[int] = punctuation_skiplist(tokenizer, settings)
        self._skiplist_tensor = torch.tensor(sorted(self.skiplist), dtype=torch.long)
        self._warned_truncation = False
        self._warned_query_length = False
        self.precision = "fp32"  # of the backbone: see colja.model.precision

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        precision: str = "auto",
        dim: int = 128,
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool | None = None,
        **settings_overrides: Any,
    ) -> "ColBERT":
        """Load a ColBERT model from a local folder or a Hugging Face hub id.

        Understands Stanford ``HF_ColBERT`` checkpoints (JaColBERT v1/v2/v2.5,
        honouring ``artifact.metadata``), PyLate / sentence-transformers ColBERT
        folders, and plain backbones such as ``cl-tohoku/bert-base-japanese-v3``
        (a fresh bias-free projection to ``dim`` is added, ready for training).

        Args:
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``…; default CUDA when available.
            dtype: ``"float16"``/``"bfloat16"`` to run the whole encoder in half
                precision (meant for GPUs); outputs are float32 either way.
            precision: the backbone's precision when ``dtype`` is not given:
                ``"auto"`` (default: on the CPU bf16 where it is native, else
                int8 where AVX2 is, else fp32; fp32 on GPUs; ``$COLJA_PRECISION``
                replaces it), ``"fp32"`` (exactly the reference's vectors; use it
                to train or save), ``"bf16"``, ``"int8"`` (CPU). See
                :mod:`colja.model.precision`.
            dim: projection size for a plain backbone (ignored otherwise).
            settings_overrides: any :class:`ColBERTSettings` field, e.g.
                ``doc_maxlen=512`` or ``dynamic_query_maxlen=True``.
        """
        folder = loading.resolve_folder(name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
        ckpt = loading.read_checkpoint(folder)
        settings = ckpt.settings
        if ckpt.layout == "backbone":
            settings = settings.replace(dim=dim)
        if settings_overrides:
            try:
                settings = settings.replace(**settings_overrides)
            except ValueError as e:
                raise TypeError(str(e)) from None
        backbone = _load_backbone(ckpt.backbone_folder)
        tokenizer = _load_tokenizer(ckpt.backbone_folder, folder)
        linear = None
        if ckpt.linear_weight is not None:
            linear = nn.Linear(ckpt.linear_weight.shape[1], ckpt.linear_weight.shape[0], bias=False)
            with torch.no_grad():
                linear.weight.copy_(ckpt.linear_weight.to(linear.weight.dtype))
        model = cls(backbone, tokenizer, settings, linear=linear, name_or_path=str(name_or_path))
        model.eval()
        logger.info("loaded %s (%s layout) from %s", name_or_path, ckpt.layout, folder)
        model.to_device(device, dtype)
        if model.device.type == "cpu":
            tune_cpu_allocator()
        if dtype is None:
            chosen = resolve_precision(precision, model.device)
            if chosen != "fp32":
                model.bert = apply_precision(model.bert, chosen)
                model.precision = chosen
                logger.info("encoding in %s on this CPU (precision=%r; pass precision='fp32' for the reference's "
                            "exact vectors)", chosen, precision)
        elif precision not in ("auto", "fp32"):
            raise ValueError("pass either dtype= (the whole model) or precision= (the backbone on the CPU), not both")
        return model

    def to_device(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> "ColBERT":
        """Move to ``device`` (default: CUDA if available) and optionally cast."""
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of 'float32', 'float16', 'bfloat16' or None, got {dtype!r}")
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device='cuda' was requested but torch sees no CUDA device")
        target = _DTYPES[dtype]
        if target is torch.float16 and device.type == "cpu":
            warnings.warn("float16 on CPU is slow; use bfloat16 or float32 there", stacklevel=2)
        self.to(device=device, dtype=target) if target is not None else self.to(device=device)
        return self

    @property
    def device(self) -> torch.device:
        return self.linear.weight.device

    @property
    def dim(self) -> int:
        return self.settings.dim

    @property
    def query_maxlen(self) -> int:
        return self.settings.query_maxlen

    @property
    def doc_maxlen(self) -> int:
        return self.settings.doc_maxlen

    @property
    def max_positions(self) -> int:
        return int(getattr(self.bert.config, "max_position_embeddings", 512))

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write the Stanford ``HF_ColBERT`` layout (readable by colbert-ai, RAGatouille, PyLate).

        Files: ``config.json`` (architectures ``HF_ColBERT``), ``model.safetensors``
        (backbone under its ``base_model_prefix`` + ``linear.weight``),
        ``artifact.metadata`` and the tokenizer files.
        """
        from safetensors.torch import save_file

        if self.precision != "fp32":
            raise ValueError(f"this model encodes in {self.precision} (precision='auto' picked it on this CPU); "
                             "saving would lose its weights' precision: load it with precision='fp32' to save or train")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        prefix = getattr(self.bert, "base_model_prefix", "bert") or "bert"
        state = {f"{prefix}.{k}": v.detach().to("cpu").contiguous() for k, v in self.bert.state_dict().items()}
        state["linear.weight"] = self.linear.weight.detach().to("cpu").contiguous()
        config = self.bert.config.to_dict()
        config["architectures"] = ["HF_ColBERT"]
        tmp = path / "model.safetensors.tmp"
        save_file(state, str(tmp), metadata={"format": "pt"})
        _match_umask(tmp)
        os.replace(tmp, path / "model.safetensors")
        write_json(path / "config.json", config, indent=4)
        self.tokenizer.save_pretrained(str(path))
        write_json(path / "artifact.metadata", self.settings.to_artifact_metadata(), indent=4)
        stale = path / "pytorch_model.bin"
        if stale.exists():
            stale.unlink()

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """L2-normalised token vectors ``float [batch, length, dim]`` (differentiable)."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask)[0]
        return torch.nn.functional.normalize(self.linear(hidden.to(self.linear.weight.dtype)), p=2, dim=2)

    def query_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Which query positions are real vectors (everything but ``[PAD]``)."""
        return input_ids != self.special_ids.pad

    def doc_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Which document positions are kept (not ``[PAD]``, not in the skiplist)."""
        keep = input_ids != self.special_ids.pad
        if len(self.skiplist):
            keep &= ~torch.isin(input_ids, self._skiplist_tensor.to(input_ids.device))
        return keep

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` (any length; thread-safe), without special tokens."""
        return len(tokenize_text(self.tokenizer, text))

    # ------------------------------------------------------------------ tensors
    def tokenize_queries(self, texts: list[str], *, dynamic_length: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference query tensors ``(input_ids, attention_mask)``, long ``[n, L]``."""
        texts = check_texts(texts, what="queries")
        if not texts:
            return torch.empty((0, self.query_maxlen), dtype=torch.long), torch.empty((0, self.query_maxlen), dtype=torch.long)
        pieces = wordpiece_ids(self.tokenizer, texts, self.max_positions)
        dynamic = self.settings.dynamic_query_maxlen if dynamic_length is None else dynamic_length
        lengths = [query_length(len(p), self.settings, self.max_positions, dynamic) for p in pieces]
        return query_tensors(pieces, lengths, self.special_ids, self.settings)

    def tokenize_documents(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference document tensors ``(input_ids, attention_mask)``, padded to the longest."""
        texts = check_texts(texts, what="documents")
        sequences, truncated = doc_sequences(wordpiece_ids(self.tokenizer, texts, self.settings.doc_maxlen),
                                             self.special_ids, self.settings)
        self._warn_truncated(truncated, len(texts))
        if not sequences:
            return torch.empty((0, 0), dtype=torch.long), torch.empty((0, 0), dtype=torch.long)
        return pad_batch(sequences, self.special_ids.pad)

    # ------------------------------------------------------------------ encoding
    @torch.inference_mode()
    def encode_queries(
        self,
        texts: list[str],
        *,
        batch_size: int = 32,
        dynamic_length: bool | None = None,
        show_progress: bool | None = None,
    ) -> torch.Tensor:
        """Encode queries: float32 CPU tensor ``[n, L, dim]``.

        ``L`` is ``query_maxlen`` (32 for JaColBERT). With dynamic length
        (``dynamic_length=True`` or the model's ``dynamic_query_maxlen``), each
        query gets the next multiple of 32 tokens that holds it, and the batch
        is zero-padded to the longest; zero rows add nothing to a MaxSim score.
        """
        texts = check_texts(texts, what="queries")
        _check_batch_size(batch_size)
        if not texts:
            return torch.empty((0, self.query_maxlen, self.dim))
        pieces = wordpiece_ids(self.tokenizer, texts, self.max_positions)
        dynamic = self.settings.dynamic_query_maxlen if dynamic_length is None else dynamic_length
        lengths = [query_length(len(p), self.settings, self.max_positions, dynamic) for p in pieces]
        long = sum(len(p) + 3 > n for p, n in zip(pieces, lengths))
        if long and not self._warned_query_length:
            self._warned_query_length = True
            limit = max(lengths)
            warn_at_caller(
                f"{long} of {len(texts)} queries are longer than the query length ({limit} tokens) and were cut"
                + ("" if dynamic else "; pass dynamic_length=True (or load the model with dynamic_query_maxlen=True) "
                   f"to encode up to {self.max_positions - 2} tokens")
                + " (said once per model)", TruncationWarning)
        width = max(lengths)
        out = torch.zeros((len(texts), width, self.dim), dtype=torch.float32)
        # Group queries of one length so every batch is dense and no query's
        # vectors depend on its neighbours.
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        show = progress_enabled(show_progress, len(batches))
        for batch in progress(batches, desc="Encoding queries", show=show, unit="batch"):
            ids, mask = query_tensors([pieces[i] for i in batch], [lengths[i] for i in batch], self.special_ids, self.settings)
            vectors = self._encode_batch(ids, mask, self.query_mask(ids))
            out[batch, : ids.shape[1]] = vectors
        return out

    @torch.inference_mode()
    def encode_documents(
        self,
        texts: list[str],
        *,
        batch_size: int = 32,
        show_progress: bool | None = None,
        return_flat: bool = False,
        sort_by_length: bool = True,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, torch.Tensor]:
        """Encode documents: one float32 CPU tensor ``[n_i, dim]`` per text.

        Punctuation (the skiplist) and padding are dropped, ``[CLS]``, the
        marker and ``[SEP]`` are kept, so even an empty string gives 3 vectors.
        Texts are batched by token length (little compute goes to padding) and
        returned in input order. With ``return_flat=True`` the result is
        ``(vectors float32 [sum n_i, dim], doclens int64 [n])``.
        Documents longer than ``doc_maxlen`` tokens are truncated, with one
        :class:`~colja.errors.TruncationWarning` per call.
        """
        texts = check_texts(texts, what="documents")
        _check_batch_size(batch_size)
        sequences, truncated = doc_sequences(wordpiece_ids(self.tokenizer, texts, self.settings.doc_maxlen),
                                             self.special_ids, self.settings)
        self._warn_truncated(truncated, len(texts))
        n = len(sequences)
        order = sorted(range(n), key=lambda i: -len(sequences[i])) if sort_by_length else list(range(n))
        batches = [order[i : i + batch_size] for i in range(0, n, batch_size)]
        results: list[torch.Tensor | None] = [None] * n
        show = progress_enabled(show_progress, len(batches))
        for batch in progress(batches, desc="Encoding documents", show=show, unit="batch"):
            ids, mask = pad_batch([sequences[i] for i in batch], self.special_ids.pad)
            keep = self.doc_mask(ids)
            vectors = self._encode_batch(ids, mask, keep)
            for row, i in enumerate(batch):
                results[i] = vectors[row][keep[row]]
        docs = [r if r is not None else torch.empty((0, self.dim)) for r in results]
        if not return_flat:
            return docs
        doclens = torch.tensor([d.shape[0] for d in docs], dtype=torch.long)
        flat = torch.cat(docs) if docs else torch.empty((0, self.dim))
        return flat, doclens

    def _encode_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        device = self.device
        with _eval_mode(self):
            vectors = self(input_ids.to(device), attention_mask.to(device))
        vectors = vectors * keep.to(device).unsqueeze(-1)
        return vectors.float().cpu()

    def _warn_truncated(self, truncated: int, total: int) -> None:
        if truncated:
            warn_at_caller(
                f"{truncated} of {total} documents are longer than doc_maxlen={self.doc_maxlen} tokens and were truncated; "
                "split long documents into passages (Index.build(..., split=True)) or raise doc_maxlen",
                TruncationWarning,
            )

    # ------------------------------------------------------------------ scoring
    @torch.inference_mode()
    def score(self, queries: list[str], documents: list[str], *, batch_size: int = 32) -> torch.Tensor:
        """MaxSim scores ``float32 [n_queries, n_documents]`` (Σ_q max_d q·d).

        To rank passages for a query (RAG reranking) use :func:`colja.rerank`.
        """
        Q = self.encode_queries(queries, batch_size=batch_size)
        D, doclens = self.encode_documents(documents, batch_size=batch_size, return_flat=True)
        return kernels.maxsim_dense_queries(Q, D, kernels.lengths_to_offsets(doclens))

    def __repr__(self) -> str:
        return (f"ColBERT(name_or_path={self.name_or_path!r}, backbone={type(self.bert).__name__}, "
                f"dim={self.dim}, query_maxlen={self.query_maxlen}, doc_maxlen={self.doc_maxlen})")


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _match_umask(path: Path) -> None:
    """Give a file the permissions a plain ``open(..., "w")`` would (safetensors may write 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


@contextlib.contextmanager
def _eval_mode(module: nn.Module):
    """Encode without dropout even while a model is being trained."""
    was_training = module.training
    if was_training:
        module.eval()
    try:
        yield
    finally:
        if was_training:
            module.train()


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _load_backbone(folder: Path) -> nn.Module:
    from transformers import AutoModel

    try:
        with _quiet_transformers():
            model, info = AutoModel.from_pretrained(str(folder), output_loading_info=True)
    except Exception as e:
        raise ModelLoadError(f"cannot load the backbone from {folder}: {type(e).__name__}: {e}") from e
    missing = [k for k in info.get("missing_keys", []) if "pooler" not in k and "position_ids" not in k]
    if missing:
        raise ModelLoadError(f"{folder}: the weights lack {len(missing)} backbone tensors, e.g. {missing[:3]}")
    return model


def _load_tokenizer(*folders: Path):
    from transformers import AutoTokenizer

    errors = []
    for folder in dict.fromkeys(folders):
        try:
            with _quiet_transformers():
                return AutoTokenizer.from_pretrained(str(folder))
        except Exception as e:  # missing files, missing fugashi/unidic-lite, ...
            errors.append(f"{folder}: {type(e).__name__}: {e}")
    raise ModelLoadError("cannot load the tokenizer: " + " | ".join(errors))
