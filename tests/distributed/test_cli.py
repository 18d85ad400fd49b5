"""``colja index ... --shards N`` and ``--ray ADDRESS``; ``colja search`` on a sharded index."""

from __future__ import annotations

import json

import pytest

from colja import Index
from colja.cli import main
from colja.distributed import ShardedIndex

pytestmark = [pytest.mark.filterwarnings("ignore::colja.errors.TruncationWarning"), pytest.mark.timeout(300)]


@pytest.fixture()
def passages(tmp_path, corpus):
    texts, ids, _ = corpus
    path = tmp_path / "passages.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for t, i in list(zip(texts, ids))[:60]:
            f.write(json.dumps({"id": i, "text": t, "年": 2000 + int(i.split("-")[1])}, ensure_ascii=False) + "\n")
    return path


def test_index_with_shards_then_search(passages, tmp_path, model_path, capsys):
    path = tmp_path / "sharded"
    assert main(["index", str(passages), "--index", str(path), "--model", model_path, "--shards", "2"]) == 0
    assert "in 2 shards" in capsys.readouterr().out
    with ShardedIndex.load(path) as index:
        assert len(index) == 60 and index.num_shards == 2
    assert main(["search", "日本の首都", "--index", str(path), "-k", "3", "--json",
                 "--where", '{"年": {"$gte": 2030}}']) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(rows[0]["hits"]) == 3 and all(h["metadata"]["年"] >= 2030 for h in rows[0]["hits"])
    with pytest.raises(SystemExit) as exit_:
        main(["index", str(passages), "--index", str(path), "--model", model_path, "--shards", "0"])
    assert exit_.value.code == 2 and "--shards" in capsys.readouterr().err
    assert main(["index", str(passages), "--index", str(path), "--model", model_path, "--shards", "2"]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_index_on_ray(passages, tmp_path, model_path, ray_cluster, capsys):
    path = tmp_path / "on-ray"
    assert main(["index", str(passages), "--index", str(path), "--model", model_path,
                 "--ray", ray_cluster.address]) == 0
    assert "on Ray" in capsys.readouterr().out
    assert len(Index.load(path)) == 60  # one shard: an ordinary index
