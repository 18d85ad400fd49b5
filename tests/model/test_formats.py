"""Loading and saving the checkpoint layouts colja promises to understand."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from colja import ColBERT, ModelLoadError
from tests.conftest import FIXTURE_MODEL

TEXTS_Q = ["日本の首都はどこですか？", "ＡＢＣ１２３とabc123の違い", "😀 絵文字", ""]
TEXTS_D = ["東京は日本の首都です。", "半角ｶﾀｶﾅと全角カタカナ、そして😀。", "", "長い文" * 50]

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


def _vectors(model):
    return model.encode_queries(TEXTS_Q), model.encode_documents(TEXTS_D)


def _assert_same(a, b):
    torch.testing.assert_close(a[0], b[0], rtol=0, atol=1e-6)
    assert len(a[1]) == len(b[1])
    for x, y in zip(a[1], b[1]):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


def test_save_then_load_gives_identical_vectors(fixture_model, tmp_path):
    fixture_model.save_pretrained(tmp_path / "saved")
    reloaded = ColBERT.from_pretrained(tmp_path / "saved", device="cpu")
    _assert_same(_vectors(fixture_model), _vectors(reloaded))
    assert reloaded.settings.to_dict() == fixture_model.settings.to_dict()


def test_saved_folder_is_stanford_layout(fixture_model, tmp_path):
    out = tmp_path / "saved"
    fixture_model.save_pretrained(out)
    for name in ("config.json", "model.safetensors", "artifact.metadata", "vocab.txt", "tokenizer_config.json"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["HF_ColBERT"]
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
        assert f.get_tensor("linear.weight").shape == (128, 64)
    assert "linear.bias" not in keys
    assert all(k.startswith("bert.") for k in keys - {"linear.weight"})
    meta = json.loads((out / "artifact.metadata").read_text())
    for key in ("dim", "query_maxlen", "doc_maxlen", "query_token_id", "doc_token_id", "attend_to_mask_tokens", "mask_punctuation"):
        assert key in meta
    assert meta["doc_maxlen"] == 64 and meta["query_token_id"] == "[unused0]"
    # keys colja does not use (training/indexing settings) survive the round trip
    original = json.loads((FIXTURE_MODEL / "artifact.metadata").read_text())
    assert meta["checkpoint"] == original["checkpoint"] and meta["nway"] == original["nway"]
    assert meta["meta"]["version"] == "colbert-v0.4"


def test_pytorch_bin_checkpoint_loads(fixture_model, tmp_path):
    out = tmp_path / "bin"
    shutil.copytree(FIXTURE_MODEL, out)
    state = load_file(str(out / "model.safetensors"))
    (out / "model.safetensors").unlink()
    torch.save(state, out / "pytorch_model.bin")
    model = ColBERT.from_pretrained(out, device="cpu")
    _assert_same(_vectors(fixture_model), _vectors(model))


def write_pylate_copy(source: ColBERT, folder, *, query_prefix="[unused0]", document_prefix="[unused1]"):
    """The layout PyLate writes: a Transformer at the root, a bias-free Dense in 1_Dense."""
    folder.mkdir()
    source.bert.save_pretrained(folder)  # keys without the "bert." prefix, as sentence-transformers saves them
    source.tokenizer.save_pretrained(str(folder))
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
    ]))
    (folder / "1_Dense").mkdir()
    (folder / "1_Dense" / "config.json").write_text(json.dumps({
        "in_features": source.linear.in_features, "out_features": source.linear.out_features, "bias": False,
        "activation_function": "torch.nn.modules.linear.Identity", "use_residual": False}))
    save_file({"linear.weight": source.linear.weight.detach().contiguous()}, str(folder / "1_Dense" / "model.safetensors"))
    (folder / "config_sentence_transformers.json").write_text(json.dumps({
        "query_prefix": query_prefix, "document_prefix": document_prefix,
        "query_length": source.query_maxlen, "document_length": source.doc_maxlen,
        "attend_to_expansion_tokens": False, "do_query_expansion": True,
        "skiplist_words": list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    }))


def test_pylate_layout_gives_identical_vectors(fixture_model, tmp_path):
    write_pylate_copy(fixture_model, tmp_path / "pylate")
    model = ColBERT.from_pretrained(tmp_path / "pylate", device="cpu")
    assert model.special_ids.query_marker == 5 and model.special_ids.doc_marker == 6
    assert model.skiplist == fixture_model.skiplist
    _assert_same(_vectors(fixture_model), _vectors(model))


def test_pylate_dense_with_bias_is_refused(fixture_model, tmp_path):
    write_pylate_copy(fixture_model, tmp_path / "pylate")
    cfg = tmp_path / "pylate" / "1_Dense" / "config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "bias": True}))
    with pytest.raises(ModelLoadError, match="bias"):
        ColBERT.from_pretrained(tmp_path / "pylate")


def test_plain_backbone_gets_fresh_projection(tiny_backbone_path):
    model = ColBERT.from_pretrained(tiny_backbone_path, device="cpu")
    assert model.linear.weight.shape == (128, 32) and model.linear.bias is None
    assert model.special_ids.query_marker == 5 and model.special_ids.doc_marker == 6
    Q = model.encode_queries(["東北大学で自然言語処理の研究をしています。"])
    assert Q.shape == (1, 32, 128)
    torch.testing.assert_close(Q.norm(dim=-1), torch.ones(1, 32))
    narrow = ColBERT.from_pretrained(tiny_backbone_path, device="cpu", dim=96, doc_maxlen=128)
    assert narrow.dim == 96 and narrow.doc_maxlen == 128


def test_plain_backbone_is_trainable(tiny_backbone_path):
    model = ColBERT.from_pretrained(tiny_backbone_path, device="cpu")
    model.train()
    ids, mask = model.tokenize_queries(["質問です"])
    vectors = model(ids, mask)
    vectors.sum().backward()
    assert model.linear.weight.grad is not None and model.linear.weight.grad.abs().sum() > 0
    assert model.bert.embeddings.word_embeddings.weight.grad is not None


def test_saved_backbone_model_reloads_as_colbert(tiny_backbone_path, tmp_path):
    model = ColBERT.from_pretrained(tiny_backbone_path, device="cpu")
    model.save_pretrained(tmp_path / "trained")
    again = ColBERT.from_pretrained(tmp_path / "trained", device="cpu")
    torch.testing.assert_close(model.linear.weight, again.linear.weight)
    torch.testing.assert_close(model.encode_queries(["テスト"]), again.encode_queries(["テスト"]))


def test_unknown_setting_is_an_error(fixture_model_path):
    with pytest.raises(TypeError, match="doc_max_len"):
        ColBERT.from_pretrained(fixture_model_path, doc_max_len=100)


def test_unreachable_hub_id_says_how_to_load_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        ColBERT.from_pretrained("answerdotai/JaColBERTv2.5", cache_dir=str(tmp_path / "empty-cache"))
    message = str(err.value)
    assert "answerdotai/JaColBERTv2.5" in message and "local folder" in message and "HF_HUB_OFFLINE" in message


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        ColBERT.from_pretrained(str(tmp_path / "no" / "such" / "model"))


def test_folder_without_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="holds no model"):
        ColBERT.from_pretrained(tmp_path)
