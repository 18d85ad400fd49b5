"""``sharded.json``: what makes a folder a sharded index, and the errors for anything else."""

from __future__ import annotations

import json

import pytest

import colja
from colja import IndexFormatError, IndexNotFoundError
from colja.distributed import ShardedIndex

pytestmark = pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning")


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory, corpus, _fixture_model):
    texts, ids, meta = corpus
    path = tmp_path_factory.mktemp("layout") / "two"
    ShardedIndex.build(texts[:40], path, shards=2, model=_fixture_model, doc_ids=ids[:40], metadata=meta[:40]).close()
    return path


def test_a_folder_without_sharded_json_is_not_a_sharded_index(two_shards):
    with pytest.raises(IndexNotFoundError, match="not a sharded index"):
        ShardedIndex.load(two_shards / "shard-000")  # an ordinary index


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(format="other"), "format must be"),
    (lambda m: m.update(version=99), "version 99"),
    (lambda m: m.update(num_shards=3), "must agree"),
    (lambda m: m.update(routing="crc32"), "routing"),
])
def test_a_broken_sharded_json_is_a_format_error(two_shards, tmp_path, change, message):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(two_shards, copy)
    manifest = json.loads((copy / "sharded.json").read_text(encoding="utf-8"))
    change(manifest)
    (copy / "sharded.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(IndexFormatError, match=message):
        ShardedIndex.load(copy)


def test_a_missing_shard_folder_is_a_format_error(two_shards, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(two_shards, copy)
    shutil.rmtree(copy / "shard-001")
    with pytest.raises(IndexFormatError, match="shard-001 is missing"):
        ShardedIndex.load(copy)


def test_overwrite_rules(two_shards, corpus, _fixture_model, tmp_path):
    from colja import IndexExistsError

    texts, ids, _ = corpus
    with pytest.raises(IndexExistsError, match="overwrite=True"):
        ShardedIndex.build(texts[:10], two_shards, shards=2, model=_fixture_model)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(IndexExistsError, match="not a colja index"):
        ShardedIndex.build(texts[:10], tmp_path / "foreign", shards=2, model=_fixture_model)
    with pytest.raises(colja.CollectionError, match="shard 0 of 3 would be empty"):  # ids 0..11: none hash to 0
        ShardedIndex.build(texts[:12], tmp_path / "again", shards=3, model=_fixture_model)
    assert not (tmp_path / "again" / "sharded.json").exists() and not list((tmp_path / "again").glob("shard-*"))
    again = ShardedIndex.build(texts[:30], tmp_path / "again", shards=3, model=_fixture_model)
    again.close()
    smaller = ShardedIndex.build(texts[:30], tmp_path / "again", shards=2, model=_fixture_model, overwrite=True)
    try:
        assert smaller.num_shards == 2 and len(smaller) == 30
        assert not (tmp_path / "again" / "shard-002").exists()  # the old third shard is gone
    finally:
        smaller.close()
