"""``device=`` on Index.build / from_embeddings / load, on the CPU (the GPU side is tests/gpu)."""

from __future__ import annotations

import pytest
import torch

from colja import Index
from colja.search.plaid import SearchArrays
from tests.device_checks import assert_same_answers, assert_same_files, generated_collection, generated_queries


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    docs = generated_collection()
    default = Index.from_embeddings(docs, root / "default", texts=[f"文書{i}" for i in range(len(docs))])
    on_cpu = Index.from_embeddings(docs, root / "cpu", texts=[f"文書{i}" for i in range(len(docs))], device="cpu")
    return default, on_cpu


def test_explicit_cpu_build_writes_the_same_files(built):
    default, on_cpu = built
    assert_same_files(default, on_cpu)
    assert on_cpu.device == torch.device("cpu") and default.device == torch.device("cpu")


def test_explicit_cpu_load_gives_the_same_answers(built):
    default, _ = built
    loaded = Index.load(default.path, device="cpu")
    Q = generated_queries()
    assert_same_answers(default, loaded, Q)
    assert_same_answers(default, loaded, Q, exhaustive=True)
    assert_same_answers(default, loaded, Q, where=None, group_by_doc=True)


def test_text_search_on_an_explicit_device(tmp_path, _fixture_model):
    texts = ["東京は日本の首都である。", "富士山は日本一高い山。", "大阪は商業の町。", "ＡＢＣ ｶﾀｶﾅ 🍣"]
    index = Index.build(texts, tmp_path / "t", model=_fixture_model, device="cpu")
    again = Index.load(tmp_path / "t", model=_fixture_model, device=torch.device("cpu"))
    assert [h.doc_id for h in index.search("日本一高い山は？", k=3)] == [h.doc_id for h in again.search("日本一高い山は？", k=3)]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_a_gpu_is_a_clear_error(built, tmp_path, device):
    default, _ = built
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        Index.load(default.path, device=device)
    with pytest.raises(ValueError, match="torch sees no CUDA device"):
        Index.from_embeddings(generated_collection(20), tmp_path / "x", device=device)
    assert not (tmp_path / "x").exists()  # nothing written


@pytest.mark.parametrize("device", ["tpu", "gpu", "cpu:zero", 3.5])
def test_unknown_devices_are_rejected(built, device):
    default, _ = built
    with pytest.raises(ValueError, match="device"):
        Index.load(default.path, device=device)


def test_search_arrays_move_and_come_back(built):
    default, _ = built
    with default.snapshot() as s:
        arrays = SearchArrays.of(s)
        assert arrays.device.type == "cpu" and SearchArrays.of(s, torch.device("cpu")) is arrays  # one copy on the CPU
        moved = arrays.to(torch.device("cpu"))
        for name in ("centroids", "codes", "residuals", "norms", "doc_offsets", "ivf", "ivf_offsets"):
            assert torch.equal(getattr(moved, name), getattr(arrays, name))
