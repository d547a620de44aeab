"""Ray Data on a simulated two-node cluster (two raylets of 1 CPU on this machine): the work
lands on both nodes and the results are the folder indexer's."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
chromadb = pytest.importorskip("chromadb")
from test_ray import BAD, indexer_records, make_folder  # noqa: E402

from clipclap_integrations.ray import embed_dataset, read_media, write_chroma  # noqa: E402


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[None]:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: socket paths must fit
    before = os.environ.get("RAY_TMPDIR")
    os.environ["RAY_TMPDIR"] = temp  # the nodes' session files, not /tmp/ray
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False)
        yield
    finally:
        ray.shutdown()
        cluster.shutdown()
        if before is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = before
        shutil.rmtree(temp, ignore_errors=True)


def test_work_lands_on_both_nodes_and_results_are_the_same(
    two_nodes: None, tmp_path: Path, media_dir: Path, tiny_model_dir: Path
) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    folder = make_folder(tmp_path / "lib", media_dir)
    ds = read_media(folder, tiny_model_dir, override_num_blocks=8)
    ds = embed_dataset(ds, tiny_model_dir, actors=2, threads=1, batch_size=1, record_node=True)
    context = ray.data.DataContext.get_current()
    waited = context.wait_for_min_actors_s
    context.wait_for_min_actors_s = 120  # both actors up before work is handed out
    try:
        rows = ds.take_all()
    finally:
        context.wait_for_min_actors_s = waited
    assert len({r["node_id"] for r in rows}) == 2  # each node's actor embedded some
    assert {Path(r["source"]).name for r in rows if r["error"] is not None} == BAD
    reference = indexer_records(tmp_path, folder, tiny_model_dir)
    good = {r["id"]: r for r in rows if r["error"] is None}
    assert set(good) == set(reference)
    for rid, (_meta, doc, uri, vector) in reference.items():
        assert (good[rid]["document"], good[rid]["uri"]) == (doc, uri)
        np.testing.assert_allclose(good[rid]["embedding"], vector, atol=1e-5)
    collection = chromadb.PersistentClient(str(tmp_path / "db")).create_collection("nodes")
    report = write_chroma(ray.data.from_items(rows), collection)
    assert report.written == collection.count() == len(reference)
    stored = collection.get(ids=list(reference), include=["metadatas"])
    assert {i: m for i, m in zip(stored["ids"], stored["metadatas"], strict=True)} == {
        i: v[0] for i, v in reference.items()
    }
