"""Parity with the reference index in ``../shared/fixtures/colbert-tiny-ja/reference-index``.

The reference (colbert-ai 0.2.22, CPU) encoded the passages' ``text`` field of
``jsquad-dev`` (title not included: the doclens match only that way), stored
the vectors as float16 and compressed them with ``centroids @ emb`` in float32.
Reproducing that float16 rounding is what makes the residuals match; the few
rows that still differ have one dimension whose residual is exactly at the
middle cutoff (~0), where the encoders' ~1e-6 differences decide the fp16 value.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from .index_helpers import FIXTURE_MODEL, JSQUAD_CORPUS, REFERENCE_INDEX

from colja.index.codec import ResidualCodec
from colja import Index

# the fixture corpus is longer than the tiny model's doc_maxlen=64, as it was for the reference
pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


def reference_codec() -> ResidualCodec:
    return ResidualCodec(
        centroids=torch.from_numpy(np.load(REFERENCE_INDEX / "centroids.npy")),
        bucket_cutoffs=torch.from_numpy(np.load(REFERENCE_INDEX / "bucket_cutoffs.npy")),
        bucket_weights=torch.from_numpy(np.load(REFERENCE_INDEX / "bucket_weights.npy")),
        avg_residual=float(np.load(REFERENCE_INDEX / "avg_residual.npy")),
        nbits=2,
    )


@pytest.fixture(scope="module")
def corpus_texts() -> list[str]:
    with open(JSQUAD_CORPUS, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


@pytest.fixture(scope="module")
def corpus_vectors(_fixture_model, corpus_texts):
    vectors, doclens = _fixture_model.encode_documents(corpus_texts, batch_size=64, show_progress=False, return_flat=True)
    return vectors, doclens


def test_doclens_match_reference(corpus_vectors):
    _, doclens = corpus_vectors
    np.testing.assert_array_equal(doclens.numpy(), np.load(REFERENCE_INDEX / "doclens.npy"))


def test_codec_parity_with_reference(corpus_vectors):
    vectors, _ = corpus_vectors
    codec = reference_codec()
    codes, residuals = codec.compress(vectors.half().float())  # the reference compresses float16 vectors
    ref_codes = np.load(REFERENCE_INDEX / "codes.npy")
    ref_residuals = np.load(REFERENCE_INDEX / "residuals.npy")
    same_codes = (codes.numpy() == ref_codes).mean()
    same_rows = ((residuals.numpy() == ref_residuals).all(1) & (codes.numpy() == ref_codes)).mean()
    print(f"codes identical: {same_codes:.5%}, code+residual rows identical: {same_rows:.5%}")
    assert same_codes >= 0.999
    assert same_rows >= 0.999


def test_reference_codec_values_are_reproduced_by_fit():
    """Fitting on the reference's own decompressed vectors recovers a codec of the same shape/scale."""
    codec = reference_codec()
    codes = torch.from_numpy(np.load(REFERENCE_INDEX / "codes.npy"))
    residuals = torch.from_numpy(np.load(REFERENCE_INDEX / "residuals.npy"))
    vectors = codec.decompress(codes[:20000], residuals[:20000], normalize=False)
    refit = ResidualCodec.fit(codec.centroids, vectors, nbits=2)
    # all residuals of a decompressed vector are bucket weights, so the quantiles land on them
    assert set(np.round(refit.bucket_weights.numpy(), 6)) <= set(np.round(codec.bucket_weights.numpy(), 6))


def test_import_stanford_gives_the_same_arrays(tmp_path):
    index = Index.import_stanford(REFERENCE_INDEX / "stanford-index", tmp_path / "imported", model=str(FIXTURE_MODEL))
    for name in ("codes", "residuals", "doclens", "ivf_lengths", "bucket_cutoffs", "bucket_weights"):
        ref = np.load(REFERENCE_INDEX / f"{name}.npy")
        assert np.array_equal(getattr(index._snapshot, name).numpy(), ref.astype(getattr(index._snapshot, name).numpy().dtype)), name
    np.testing.assert_array_equal(index._snapshot.centroids.float().numpy(), np.load(REFERENCE_INDEX / "centroids.npy"))
    ref_ivf = np.load(REFERENCE_INDEX / "ivf.npy")
    np.testing.assert_array_equal(index._snapshot.ivf.numpy(), ref_ivf[: int(index._snapshot.ivf_lengths.sum())])
    assert index._snapshot.avg_residual == pytest.approx(float(np.load(REFERENCE_INDEX / "avg_residual.npy")))
    torch.testing.assert_close(index._snapshot.norms, index._snapshot.codec.decompress(index._snapshot.codes, index._snapshot.residuals, normalize=False).norm(dim=1))
    assert index.manifest["source"]["kind"] == "import_stanford"
    assert index.manifest["model"]["name_or_path"] == str(FIXTURE_MODEL)
    assert index._snapshot.docs.get([0]) == [("0", "", None)]
    index.close()


def test_import_stanford_ragatouille_maps_and_collection(tmp_path):
    import shutil

    src = tmp_path / "rag" / "indexes" / "my"
    shutil.copytree(REFERENCE_INDEX / "stanford-index", src)
    n = int(np.load(REFERENCE_INDEX / "doclens.npy").shape[0])
    doc_ids = json.loads((REFERENCE_INDEX / "index.json").read_text())["doc_ids"]
    # RAGatouille: one document split into two passages (pids 0 and 1), metadata per document
    pid_map = {str(p): doc_ids[p] for p in range(n)}
    pid_map["1"] = doc_ids[0]
    (src / "pid_docid_map.json").write_text(json.dumps(pid_map))
    (src / "docid_metadata_map.json").write_text(json.dumps({doc_ids[2]: {"source": "wiki"}}))
    (src.parent / "collection.json").write_text(json.dumps([f"passage {p}" for p in range(n)]))  # beside the index
    index = Index.import_stanford(src, tmp_path / "out")
    assert index._snapshot.docs.get([0, 1, 2]) == [(f"{doc_ids[0]}#0", "passage 0", None), (f"{doc_ids[0]}#1", "passage 1", None),
                                         (doc_ids[2], "passage 2", {"source": "wiki"})]
    assert index.manifest["model"]["name_or_path"] == "colja-fixture"  # the checkpoint named in metadata.json
    index.close()
    # explicit doc ids and a colbert-ai collection.tsv win
    tsv = tmp_path / "collection.tsv"
    tsv.write_text("".join(f"{p}\tdoc text {p}\n" for p in range(n)), encoding="utf-8")
    index = Index.import_stanford(REFERENCE_INDEX / "stanford-index", tmp_path / "out2", collection=tsv,
                                  doc_ids=[f"id-{p}" for p in range(n)])
    assert index._snapshot.docs.get([5]) == [("id-5", "doc text 5", None)]
    index.close()


def test_import_stanford_errors(tmp_path):
    import shutil

    from colja.errors import IndexFormatError, IndexNotFoundError

    with pytest.raises(IndexNotFoundError):
        Index.import_stanford(tmp_path / "missing", tmp_path / "o")
    broken = tmp_path / "broken"
    shutil.copytree(REFERENCE_INDEX / "stanford-index", broken)
    (broken / "0.codes.pt").unlink()
    with pytest.raises(IndexFormatError, match=r"0\.codes\.pt"):
        Index.import_stanford(broken, tmp_path / "o")
    assert not (tmp_path / "o").exists()
    # a pickle that is not plain tensors is refused, not executed
    import pickle

    (broken / "0.codes.pt").write_bytes(pickle.dumps({"evil": print}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch notes the pickle protocol before refusing
        with pytest.raises(IndexFormatError, match="weights_only"):
            Index.import_stanford(broken, tmp_path / "o")


def test_build_with_the_fixture_model(tmp_path, fixture_model, corpus_texts):
    """Index.build with the real (tiny) encoder; the model is reloaded lazily from the manifest."""
    texts = corpus_texts[:80]
    index = Index.build(texts, tmp_path / "real", model=fixture_model, doc_ids=[f"p{i}" for i in range(80)])
    assert index.manifest["model"]["name_or_path"] == str(FIXTURE_MODEL)
    assert index.manifest["model"]["settings"]["doc_maxlen"] == 64
    vectors, doclens = fixture_model.encode_documents(texts, return_flat=True)
    assert index._snapshot.doclens.tolist() == doclens.tolist()
    dec, _ = index.passage_vectors(range(80))
    assert (dec * vectors.half().float()).sum(1).mean() > 0.95
    index.close()
    loaded = Index.load(tmp_path / "real")
    model = loaded.model  # loaded from the manifest's name_or_path
    assert model.dim == 128 and str(model.name_or_path) == str(FIXTURE_MODEL)
    loaded.close()
