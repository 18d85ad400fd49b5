"""A real Ray cluster on this machine (a head and one worker node, separate processes), shared by
the distributed tests, and a small Japanese collection."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DATA, FIXTURE_MODEL

ray = pytest.importorskip("ray", reason='Ray is not installed: pip install "colja[ray]"')

N = 150
MB = 1024 * 1024


@pytest.fixture(scope="session")
def ray_cluster():
    """``ray.cluster_utils.Cluster``: head (1 CPU) + worker node (1 CPU), 100 MB object stores each."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": 100 * MB})
    try:
        cluster.add_node(num_cpus=1, object_store_memory=100 * MB)
        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


@pytest.fixture(scope="session")
def corpus():
    """Japanese passages (JSQuAD contexts) plus the awkward ones: empty, emoji, full/half width, long unspaced."""
    rows = [json.loads(line) for line in (DATA / "jsquad-dev" / "corpus.jsonl").open(encoding="utf-8")]
    texts = [r["text"] for r in rows[: N - 4]]
    texts += ["", "🍣🍺 寿司とビール 😀", "ＡＢＣ ａｂｃ ｶﾀｶﾅ ABC abc カタカナ", "東京" * 200]
    ids = [f"文書-{i}" for i in range(N)]
    meta = [{"source": "ウィキ" if i % 3 else "ブログ", "n": i} for i in range(N)]
    return texts, ids, meta


@pytest.fixture(scope="session")
def model_path():
    return str(FIXTURE_MODEL)
