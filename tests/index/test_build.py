"""Index.build / Index.from_embeddings end to end, input checks, overwrite, defaults."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from .index_helpers import FakeModel, clustered_docs, exact_maxsim, snapshot

from colja.errors import CollectionError, IndexExistsError
from colja import Index
from colja.searchable.index import DEFAULT_MODEL, default_root
from colja.index.settings import IndexSettings


def test_from_embeddings_round_trip(tmp_path, docs_small):
    index = Index.from_embeddings(docs_small, tmp_path / "i", doc_ids=[f"x{i}" for i in range(120)],
                                  texts=[f"t{i}" for i in range(120)], metadata=[{"n": i} for i in range(120)])
    assert index.num_passages == 120
    assert index._snapshot.doclens.tolist() == [d.shape[0] for d in docs_small]
    assert index._snapshot.docs.get([3]) == [("x3", "t3", {"n": 3})]
    assert index._snapshot.docs.pids_for(["x119"]) == [119]
    vectors, lens = index.passage_vectors([0, 5])
    orig = torch.from_numpy(np.concatenate([docs_small[0], docs_small[5]]))
    assert lens.tolist() == [docs_small[0].shape[0], docs_small[5].shape[0]]
    assert (vectors * orig).sum(1).mean() > 0.97
    # the IVF lists exactly the passages with a vector at each centroid
    pid_of = torch.repeat_interleave(torch.arange(120), index._snapshot.doclens)
    for c in range(0, index._snapshot.centroids.shape[0], 37):
        lst = index._snapshot.ivf[index._snapshot.ivf_offsets[c] : index._snapshot.ivf_offsets[c + 1]]
        assert lst.tolist() == torch.unique(pid_of[index._snapshot.codes == c]).tolist()
    # norms are the pre-normalisation lengths
    raw = index._snapshot.codec.decompress(index._snapshot.codes, index._snapshot.residuals, normalize=False)
    torch.testing.assert_close(index._snapshot.norms, raw.norm(dim=1))
    assert index.manifest["model"] is None and index.manifest["source"]["kind"] == "from_embeddings"
    index.close()


@pytest.mark.parametrize("nbits", [1, 4])
def test_nbits_and_settings_recorded(tmp_path, docs_small, nbits):
    index = Index.from_embeddings(docs_small, tmp_path / "i", nbits=nbits, kmeans_niters=2)
    assert index.nbits == nbits and index._snapshot.residuals.shape[1] == 128 * nbits // 8
    assert index.manifest["settings"]["nbits"] == nbits and index.manifest["settings"]["kmeans_niters"] == 2
    assert index.stats()["compressed_bytes_per_vector"] == 4 + 16 * nbits + 4
    index.close()


def test_chunking_and_tensors_vs_arrays_do_not_change_the_index(tmp_path, docs_small):
    a = Index.from_embeddings(docs_small, tmp_path / "a", chunk_passages=7)
    b = Index.from_embeddings([torch.from_numpy(d) for d in docs_small], tmp_path / "b", chunk_passages=1000)
    for name in ("centroids", "codes", "residuals", "norms", "ivf", "ivf_lengths", "doclens", "bucket_weights"):
        assert torch.equal(getattr(a._snapshot, name), getattr(b._snapshot, name)), name
    a.close()
    b.close()


def test_build_with_a_model_and_sample_reuse(tmp_path):
    texts = [f"東京{i}は日本の首都{'です' * (i % 5)}。" for i in range(60)]
    model = FakeModel()
    index = Index.build(texts, tmp_path / "m", model=model, sample_passages=25, chunk_passages=16,
                        metadata=[{"i": i} for i in range(60)])
    assert index.model is model
    assert index._snapshot.docs.get([59]) == [("59", texts[59], {"i": 59})]
    assert index.manifest["model"]["name_or_path"] == "fake/model"
    assert index.manifest["model"]["settings"] == {"dim": 128, "doc_maxlen": 64, "kind": "fake"}
    expected = [model.encode_documents([t])[0] for t in texts]
    assert index._snapshot.doclens.tolist() == [e.shape[0] for e in expected]
    # the same vectors through from_embeddings give the same index (sample vectors were reused exactly)
    ref = Index.from_embeddings(expected, tmp_path / "e", sample_passages=25, chunk_passages=16)
    for name in ("centroids", "codes", "residuals", "ivf"):
        assert torch.equal(getattr(index._snapshot, name), getattr(ref._snapshot, name)), name
    index.close()
    ref.close()


def test_build_from_iterable_and_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    texts = [f"文書{i}です" for i in range(30)]
    a = Index.build((t for t in texts), tmp_path / "gen", model=FakeModel())
    ds = datasets.Dataset.from_dict({"body": texts, "other": list(range(30))})
    b = Index.build(ds, tmp_path / "ds", model=FakeModel(), text_column="body")
    assert torch.equal(a._snapshot.codes, b._snapshot.codes)
    assert b._snapshot.docs.get([7]) == [("7", texts[7], None)]
    with pytest.raises(CollectionError, match="no column 'text'"):
        Index.build(ds, tmp_path / "bad", model=FakeModel())
    with pytest.raises(CollectionError, match="must hold strings"):
        Index.build(ds, tmp_path / "bad", model=FakeModel(), text_column="other")
    assert not (tmp_path / "bad").exists()
    a.close()
    b.close()


def test_default_root_name_and_env(tmp_path, docs_small, monkeypatch):
    root = tmp_path / "default-root"
    assert default_root() == root  # set by the autouse fixture from $COLJA_INDEX_ROOT
    index = Index.from_embeddings(docs_small[:20], name="named")
    assert index.path == root / "named"
    again = Index.load("named")  # a bare name resolves under the root
    assert again.num_passages == 20
    auto = Index.from_embeddings(docs_small[:20])
    assert auto.path.parent == root and auto.path.name.startswith("index-")
    with pytest.raises(ValueError, match="either path"):
        Index.from_embeddings(docs_small[:20], tmp_path / "x", name="y")
    monkeypatch.delenv("COLJA_INDEX_ROOT")
    assert str(default_root()) == "indexes"
    assert DEFAULT_MODEL == "answerdotai/JaColBERTv2.5"
    for i in (index, again, auto):
        i.close()


def test_tiny_collections(tmp_path):
    one = Index.from_embeddings([np.ones((1, 128), np.float32) / np.sqrt(128)], tmp_path / "one")
    assert one.num_embeddings == 1 and one._snapshot.centroids.shape[0] == 1
    few = Index.from_embeddings(clustered_docs(n_docs=3, min_len=1, max_len=3, seed=2), tmp_path / "few")
    assert few._snapshot.centroids.shape[0] <= few.num_embeddings
    with_empty = Index.from_embeddings([np.zeros((0, 128), np.float32), np.ones((2, 128), np.float32)], tmp_path / "e")
    assert with_empty._snapshot.doclens.tolist() == [0, 2]
    v, lens = with_empty.passage_vectors([0])
    assert v.shape == (0, 128) and lens.tolist() == [0]
    for i in (one, few, with_empty):
        i.close()


BAD_INPUTS = [
    (dict(collection=[]), "empty"),
    (dict(collection="just one string"), "single string"),
    (dict(collection=["a", 3]), r"collection\[1\]"),
    (dict(doc_ids=["a", "b", "a"]), "unique"),
    (dict(doc_ids=["a", 2, "c"]), r"doc_ids\[1\] must be a str"),
    (dict(doc_ids=["a", "b"]), "2 doc ids for 3 passages"),
    (dict(metadata=[{"a": 1}, {"b": object()}, None]), r"metadata\[1\]"),
    (dict(metadata=[{"a": float("nan")}, None, None]), r"metadata\[0\]"),
    (dict(metadata=[{"a": 1}]), "1 metadata entries for 3 passages"),
    (dict(metadata=[1, 2, 3]), r"metadata\[0\]"),
]


@pytest.mark.parametrize("kwargs,message", BAD_INPUTS)
def test_bad_input_changes_nothing(tmp_path, built_small, kwargs, message):
    target = tmp_path / "idx"
    shutil_copy = snapshot(built_small)
    args = dict(collection=["a", "b", "c"])
    args.update(kwargs)
    collection = args.pop("collection")
    with pytest.raises(CollectionError, match=message):
        Index.build(collection, target, model=FakeModel(), **args)
    assert not target.exists()
    # also onto an existing index with overwrite=True: untouched
    with pytest.raises(CollectionError, match=message):
        Index.build(collection, built_small, model=FakeModel(), overwrite=True, **args)
    assert snapshot(built_small) == shutil_copy


def test_bad_embeddings(tmp_path):
    target = tmp_path / "idx"
    cases = [
        ([], "empty"),
        (np.zeros((3, 128), np.float32), "list"),
        ([np.zeros((2, 128), np.float32), np.zeros((2, 64), np.float32)], "dim 64"),
        ([np.zeros(128, np.float32)], "2-D"),
        ([np.zeros((2, 128), np.int64)], "floats"),
        ([np.full((2, 128), np.nan, np.float32)], "NaN"),
        ([np.zeros((0, 128), np.float32)], "no vectors"),
    ]
    for embs, message in cases:
        with pytest.raises(CollectionError, match=message):
            Index.from_embeddings(embs, target)
    with pytest.raises(ValueError, match="multiple of 16"):
        Index.from_embeddings([np.ones((3, 24), np.float32)], target)
    with pytest.raises(ValueError, match="unknown index setting"):
        Index.from_embeddings([np.ones((3, 128), np.float32)], target, kmeans_iter=3)
    assert not target.exists()


def test_existing_path_needs_overwrite(tmp_path, built_small, docs_small):
    before = snapshot(built_small)
    with pytest.raises(IndexExistsError, match="overwrite=True"):
        Index.from_embeddings(docs_small[:10], built_small)
    assert snapshot(built_small) == before


def test_overwrite_replaces_atomically(tmp_path, docs_small, monkeypatch):
    from colja.index.store import cleanup

    monkeypatch.setenv("COLJA_GENERATION_GRACE_S", "0")
    path = tmp_path / "idx"
    old = Index.from_embeddings(docs_small[:30], path)
    old_scores = old.passage_vectors([0])[0].clone()
    new = Index.from_embeddings(docs_small[30:80], path, overwrite=True)
    assert new.num_passages == 50 and new.generation.name == "gen-000002"
    # the old object still holds (pins) its generation and reads it
    assert sorted(p.name for p in path.iterdir()) == [".lock", "CURRENT", "gen-000001", "gen-000002"]
    assert torch.equal(old.passage_vectors([0])[0], old_scores)
    old.close()
    cleanup(path)  # what the next write does: the unpinned generation goes
    assert sorted(p.name for p in path.iterdir()) == [".lock", "CURRENT", "gen-000002"]
    new.close()


def test_load_with_model_and_lazy_model(tmp_path, docs_small):
    model = FakeModel()
    index = Index.from_embeddings(docs_small[:10], tmp_path / "i", model=model)
    assert index.model is model
    index.close()
    loaded = Index.load(tmp_path / "i")
    assert loaded.manifest["model"]["name_or_path"] == "fake/model"
    other = FakeModel(name="other")
    loaded.model = other
    assert loaded.model is other
    bare = Index.from_embeddings(docs_small[:10], tmp_path / "b")
    from colja.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="pass one"):
        bare.model
    with pytest.raises(ValueError, match="64-d"):
        Index.load(tmp_path / "b", model=FakeModel(dim=64))
    loaded.close()
    bare.close()


def test_two_level_settings_build(tmp_path):
    docs = clustered_docs(n_docs=150, seed=4)
    exact = Index.from_embeddings(docs, tmp_path / "exact", settings=IndexSettings.reference())
    fast = Index.from_embeddings(docs, tmp_path / "fast", kmeans="two_level", kmeans_cells=4, assignment="two_level",
                                 assignment_probe=4)
    assert exact.manifest["settings"]["kmeans"] == "flat"
    assert fast.manifest["settings"]["assignment"] == "two_level"
    # both reconstruct the collection about equally well
    orig = torch.from_numpy(np.concatenate(docs))
    for index in (exact, fast):
        v, _ = index.passage_vectors(range(150))
        assert (v * orig).sum(1).mean() > 0.97
    # and rank a few queries the same as exact MaxSim on the originals
    q = torch.from_numpy(np.concatenate(docs[:3])[:8])[None]
    ref = exact_maxsim(q, [torch.from_numpy(d) for d in docs]).topk(5).indices
    for index in (exact, fast):
        dec = [index.passage_vectors([p])[0] for p in range(150)]
        assert exact_maxsim(q, dec).topk(5).indices[0, 0] == ref[0, 0]
    exact.close()
    fast.close()


def test_manifest_is_readable_json(built_small):
    manifest = json.loads((built_small / "gen-000001" / "manifest.json").read_text())
    assert manifest["build"]["num_centroids"] == manifest["codec"]["num_centroids"]
    assert IndexSettings.from_dict(manifest["settings"]).nbits == 2


def test_memory_is_bounded_by_chunks(tmp_path):
    """The encoder only ever sees one chunk of passages; the sample is spilled to disk, not kept."""
    texts = [f"テキスト{i}" * (1 + i % 3) for i in range(90)]
    model = FakeModel()
    index = Index.build(texts, tmp_path / "m", model=model, chunk_passages=10, sample_passages=30)
    assert model.max_texts <= 10
    assert not list(index.generation.glob(".work*"))  # scratch files are gone
    index.close()


def test_progress_bars(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("COLJA_DISABLE_PROGRESS")
    texts = [f"文{i}" for i in range(40)]
    Index.build(texts, tmp_path / "p", model=FakeModel(), show_progress=True, kmeans_niters=2).close()
    err = capsys.readouterr().err
    for bar in ("Encoding sample", "k-means", "Indexing"):
        assert bar in err, bar
    Index.build(texts, tmp_path / "q", model=FakeModel(), show_progress=False).close()
    assert capsys.readouterr().err == ""
