"""A stored component never runs code unless the *caller* passes ``trust_remote_code=True``.

The forged folder records ``trust_remote_code: true`` for its dense first stage
and points it at a model folder whose module writes a marker file when
imported. Loading and searching without trust must refuse the stage with
:class:`~colja.errors.UntrustedCodeError` and leave no marker; the same folder
loaded with ``trust_remote_code=True`` does run the code (so the forgery is real).
"""

from __future__ import annotations

import json
import pickle
import shutil
import time

import pytest

from colja import Index, IndexFormatError, ModelLoadError, UntrustedCodeError
from tests.conftest import FIXTURE_MODEL
from tests.firststage.conftest import (hf_modules_cache, remote_code_model_path, st_model_path,  # noqa: F401 - fixtures
                                       wordpiece_tokenizer)
from tests.index.index_helpers import REFERENCE_INDEX

from .conftest import TEXTS
from .forge import forge, generation

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")]


def _evil_model(source, folder, marker):
    """A copy of the custom-code model whose module writes ``marker`` when imported."""
    shutil.copytree(source, folder)
    code = (folder / "tiny_sse.py").read_text(encoding="utf-8")
    (folder / "tiny_sse.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n" + code, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def dense_index(tmp_path_factory, st_model_path):  # noqa: F811 - the imported fixture
    pytest.importorskip("sentence_transformers")
    path = tmp_path_factory.mktemp("dense") / "idx"
    index = Index.build(TEXTS[:12], path, model=FIXTURE_MODEL)
    index.add_first_stage("dense", str(st_model_path))
    index.close()
    return path


def test_stored_dense_stage_with_custom_code_is_refused_without_trust(dense_index, remote_code_model_path,  # noqa: F811
                                                                      hf_modules_cache, tmp_path):  # noqa: F811
    marker = tmp_path / "MARKER"
    evil = _evil_model(remote_code_model_path, tmp_path / "evil-model", marker)

    def change(gen):
        f = gen / "firststage" / "dense" / "colja_dense.json"
        data = json.loads(f.read_text(encoding="utf-8"))
        data["model"]["name_or_path"] = str(evil)
        data["model"]["trust_remote_code"] = True  # what the audit's forger wrote: ignored
        f.write_text(json.dumps(data), encoding="utf-8")

    forged = forge(dense_index, tmp_path / "forged", change)
    index = Index.load(forged)  # loading succeeds: the stage is refused only when used
    started = time.perf_counter()
    with pytest.raises(UntrustedCodeError, match=r"trust_remote_code=True"):
        index.search("東京の人口", k=3, first_stage="hybrid")
    with pytest.raises(UntrustedCodeError):
        index.search("東京の人口", k=3, first_stage="dense")
    with pytest.raises(UntrustedCodeError):  # a write that extends the stage is refused too
        index.add(["大阪の人口は約880万人です。"])
    assert time.perf_counter() - started < 30
    assert not marker.exists(), "the stored model's code ran without trust_remote_code"
    assert len(index.search("東京の人口", k=3)) == 3  # the rest of the index works
    assert issubclass(UntrustedCodeError, ModelLoadError)
    index.close()

    # control: the caller's trust, and only that, lets the code run
    trusted = Index.load(forged, trust_remote_code=True)
    try:
        trusted.search("東京の人口", k=3, first_stage="dense")
    except ModelLoadError:
        pass  # the forged model's vectors need not fit the stage; what matters is that its code ran
    assert marker.exists()
    trusted.close()


def test_manifest_model_with_custom_code_never_runs(tmp_path, sound_index):
    """The index's own model entry points at a transformers folder whose code writes a marker: not run."""
    marker = tmp_path / "MARKER"
    model = tmp_path / "evil-colbert"
    shutil.copytree(FIXTURE_MODEL, model)
    config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (model / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('code ran')\n"
                                   "from transformers import BertConfig as EvilConfig, BertModel as EvilModel\n")

    def change(gen):
        manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
        manifest["model"] = {"name_or_path": str(model)}
        return manifest

    forged = forge(sound_index, tmp_path / "forged", change)
    index = Index.load(forged)
    try:
        index.search("東京", k=3)
    except (ModelLoadError, ValueError):
        pass  # refused or the tiny model does not fit: either way no code of the folder may run
    index.close()
    assert not marker.exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_stanford_import_with_a_pickled_pid_map_is_a_named_error(tmp_path):
    marker = tmp_path / "MARKER"
    src = tmp_path / "rag" / "indexes" / "my"
    shutil.copytree(REFERENCE_INDEX / "stanford-index", src)
    (src / "pid_docid_map.json").write_bytes(pickle.dumps({0: _Evil(marker)}))
    with pytest.raises(IndexFormatError, match=r"pid_docid_map\.json.*pickle"):
        Index.import_stanford(src, tmp_path / "out")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
    (src / "pid_docid_map.json").write_text('["not", "a", "map"]')
    with pytest.raises(IndexFormatError, match=r"pid_docid_map\.json.*JSON object"):
        Index.import_stanford(src, tmp_path / "out")
    (src / "pid_docid_map.json").write_text('{"zero": "a"}')
    with pytest.raises(IndexFormatError, match=r"keys must be passage numbers"):
        Index.import_stanford(src, tmp_path / "out")


def test_trust_is_carried_by_refresh_and_writes_only_from_the_caller(sound_index, tmp_path):
    shutil.copytree(sound_index, tmp_path / "i")
    index = Index.load(tmp_path / "i", trust_remote_code=True)
    assert index._snapshot.trust_remote_code
    other = Index.load(tmp_path / "i")
    assert not other._snapshot.trust_remote_code
    import numpy as np

    index.add(["追加の段落です。"], embeddings=[np.eye(32, dtype=np.float32)[:3]])
    assert index._snapshot.trust_remote_code  # the new generation keeps the caller's decision
    assert other.refresh() and not other._snapshot.trust_remote_code
    index.close()
    other.close()
