"""Shared test fixtures: paths to ../shared and tiny offline models."""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("COLJA_SHARED", REPO.parent / "shared")).resolve()
FIXTURE = SHARED / "fixtures" / "colbert-tiny-ja"
FIXTURE_MODEL = FIXTURE / "model"
FIXTURE_REFERENCE = FIXTURE / "reference"
TOKENIZER_DIR = SHARED / "tokenizers" / "bert-base-japanese-v3"
DATA = SHARED / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("COLJA_DISABLE_PROGRESS", "1")
# tests compare against the reference's exact vectors: fp32 unless a test asks for another precision
os.environ.setdefault("COLJA_PRECISION", "fp32")

if not FIXTURE_MODEL.is_dir():  # pragma: no cover - a broken checkout, not a test failure
    raise RuntimeError(f"colja's tests need the shared fixtures at {SHARED} (set COLJA_SHARED to move them)")


@pytest.fixture(scope="session")
def fixture_model_path() -> Path:
    return FIXTURE_MODEL


@pytest.fixture(scope="session")
def _fixture_model():
    from colja import ColBERT

    return ColBERT.from_pretrained(FIXTURE_MODEL, device="cpu", precision="fp32")  # the reference's exact vectors


@pytest.fixture()
def fixture_model(_fixture_model):
    """The reference fixture checkpoint (2-layer random BERT), a private copy per test."""
    return copy.deepcopy(_fixture_model)


@pytest.fixture(scope="session")
def tiny_backbone_path(tmp_path_factory) -> Path:
    """A plain 1-layer BERT with the real bert-base-japanese-v3 tokenizer (no projection)."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny-backbone")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=32768, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(TOKENIZER_DIR / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def ray_cluster():
    """A real Ray cluster on this machine (``ray.cluster_utils.Cluster``): a head and one worker
    node (separate processes), 1 CPU and a 100 MB object store each; shut down at the end."""
    ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "colja[ray]"')
    from ray.cluster_utils import Cluster

    mb = 1024 * 1024
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * mb})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=100 * mb)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()
