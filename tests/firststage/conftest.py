"""Tiny sentence-transformers models for the dense and static first stages, built offline.

* ``st_model_path``: the 1-layer BERT of ``tiny_backbone_path`` (hidden 32, the real
  bert-base-japanese-v3 tokenizer) + mean pooling, saved as a sentence-transformers
  folder whose ``config_sentence_transformers.json`` declares ``query`` / ``document``
  prompts.
* ``static_model_path``: a sentence-transformers ``StaticEmbedding`` (64-d). It needs a
  fast ``tokenizers.Tokenizer`` and bert-base-japanese-v3 only has the slow, MeCab-based
  one, so the fixture builds a WordPiece tokenizer over the same vocab.txt (NFKC, CJK
  ideographs split apart, greedy word pieces over kana runs). The real
  ``hotchpotch/static-embedding-japanese`` ships its own ``tokenizer.json``.
* ``remote_code_model_path``: an SSE-like static model (EmbeddingBag mean + a
  per-dimension tanh) whose module class lives in the model folder, as
  ``RikkaBotan/stable-static-embedding-fast-retrieval-mrl-ja`` does: loading it needs
  ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("COLJA_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
TOKENIZER_DIR = SHARED / "tokenizers" / "bert-base-japanese-v3"
PROMPTS = {"query": "クエリ: ", "document": "文章: "}


_TINY_SSE = '''"""Test-only SSE-like module: EmbeddingBag mean, then weight * tanh(alpha * x) + bias per dimension."""
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from torch import nn


class TinySSE(nn.Module):
    def __init__(self, tokenizer, dim):
        super().__init__()
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.embedding = nn.EmbeddingBag(tokenizer.get_vocab_size(), dim, mode="mean")
        self.alpha = nn.Parameter(torch.full((dim,), 0.5))
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def preprocess(self, inputs, prompt=None, **kwargs):
        if prompt:
            inputs = [prompt + t for t in inputs]
        ids = [e.ids for e in self.tokenizer.encode_batch(list(inputs), add_special_tokens=False)]
        offsets = torch.from_numpy(np.cumsum([0] + [len(i) for i in ids[:-1]]))
        return {"input_ids": torch.tensor([t for i in ids for t in i], dtype=torch.long), "offsets": offsets}

    def forward(self, features, **kwargs):
        x = self.embedding(features["input_ids"], features["offsets"])
        features["sentence_embedding"] = self.weight * torch.tanh(self.alpha * x) + self.bias
        return features

    def get_embedding_dimension(self):
        return self.embedding.embedding_dim

    get_sentence_embedding_dimension = get_embedding_dimension

    def save(self, path, **kwargs):
        save_file(self.state_dict(), os.path.join(path, "model.safetensors"))
        self.tokenizer.save(os.path.join(path, "tokenizer.json"))
        with open(os.path.join(path, "sse_config.json"), "w") as f:
            json.dump({"dim": self.embedding.embedding_dim}, f)

    @classmethod
    def load(cls, path):
        with open(os.path.join(path, "sse_config.json")) as f:
            dim = json.load(f)["dim"]
        module = cls(Tokenizer.from_file(os.path.join(path, "tokenizer.json")), dim)
        module.load_state_dict(load_file(os.path.join(path, "model.safetensors")))
        return module
'''


def _st_module(name: str):
    """A sentence-transformers module class: 6.x layout first, then the 3.x-5.x ``models`` package."""
    import importlib

    for where in ("sentence_transformers.base.modules", "sentence_transformers.sentence_transformer.modules",
                  "sentence_transformers.models"):
        try:
            return getattr(importlib.import_module(where), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"sentence_transformers has no module class {name}")


def wordpiece_tokenizer():
    """A fast WordPiece ``tokenizers.Tokenizer`` over bert-base-japanese-v3's vocab."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

    vocab = {}
    with open(TOKENIZER_DIR / "vocab.txt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            vocab[line.rstrip("\n")] = i
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.Sequence([
        normalizers.NFKC(),
        normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False),
    ])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


@pytest.fixture(scope="session")
def st_model_path(tiny_backbone_path, tmp_path_factory) -> Path:
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    Transformer, Pooling = _st_module("Transformer"), _st_module("Pooling")

    folder = tmp_path_factory.mktemp("tiny-st") / "model"
    transformer = Transformer(str(tiny_backbone_path), max_seq_length=128)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling], prompts=dict(PROMPTS), device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="session")
def st_model(st_model_path):
    """The loaded tiny model, shared: tests must not change it."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(st_model_path), device="cpu")


@pytest.fixture(scope="session")
def no_prompt_model_path(st_model_path, tmp_path_factory) -> Path:
    """The tiny model without prompts, in the Hugging Face cache layout of GLuCoSE v2 (whose
    folder declares no prompts although its card requires ``query: `` / ``passage: ``)."""
    folder = tmp_path_factory.mktemp("hf-cache") / "models--pkshatech--GLuCoSE-base-ja-v2" / "snapshots" / "0123abc"
    shutil.copytree(st_model_path, folder)
    cfg_path = folder / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["prompts"] = {}
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def static_model_path(tmp_path_factory) -> Path:
    pytest.importorskip("sentence_transformers")
    import torch
    from sentence_transformers import SentenceTransformer

    StaticEmbedding = _st_module("StaticEmbedding")

    folder = tmp_path_factory.mktemp("tiny-static") / "model"
    torch.manual_seed(0)
    module = StaticEmbedding(wordpiece_tokenizer(), embedding_dim=64)
    SentenceTransformer(modules=[module], device="cpu").save(str(folder))
    return folder


@pytest.fixture(scope="session")
def remote_code_model_path(tmp_path_factory) -> Path:
    pytest.importorskip("sentence_transformers")
    import importlib.util
    import sys

    import torch

    folder = tmp_path_factory.mktemp("tiny-sse") / "model"
    folder.mkdir()
    (folder / "tiny_sse.py").write_text(_TINY_SSE, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("_colja_test_tiny_sse", folder / "tiny_sse.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    try:
        spec.loader.exec_module(mod)
        torch.manual_seed(0)
        module = mod.TinySSE(wordpiece_tokenizer(), 64)
        with torch.no_grad():
            module.embedding.weight.mul_(3.0)  # so tanh is visibly non-linear
        module.save(str(folder))
    finally:
        sys.modules.pop(spec.name, None)
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "tiny_sse.TinySSE"}]))
    config = {"prompts": {}, "similarity_fn_name": "cosine"}
    (folder / "config_sentence_transformers.json").write_text(json.dumps(config))
    return folder


@pytest.fixture()
def hf_modules_cache(tmp_path, monkeypatch):
    """Send the code that ``trust_remote_code`` copies out of a model folder to a temporary folder."""
    import transformers.dynamic_module_utils as dmu

    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(tmp_path / "hf_modules"))
    return tmp_path / "hf_modules"
