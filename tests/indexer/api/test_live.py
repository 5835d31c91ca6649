"""LiveCatalog: uploads embedded by the served ONNX model agree with the catalog (torch) path; start-up replay."""

from __future__ import annotations

import numpy as np

from tests.conftest import draw_shape
from tests.indexer.api.conftest import run


def test_an_uploaded_image_gets_the_vector_the_catalog_path_would_give(ws, tmp_path):
    import torch

    from indexer.api import LiveCatalog, Workspace
    from models.checkpoint import load_model
    from models.embedding_store import EmbeddingStore
    from models.preprocess import load_and_preprocess

    workspace = Workspace.at(ws)
    live = LiveCatalog(workspace, "flat")
    path = draw_shape(tmp_path / "up.png", (120, 30, 200), "rectangle", offset=1)
    outcome = live.add_image(path.read_bytes(), "up.png", label="violet")
    live.close()
    store = EmbeddingStore(ws / "embeddings" / "tiny")
    served = store.vectors()[list(store.ids()).index(outcome.id)]
    with workspace.catalog() as catalog:
        model_row = catalog.model("tiny")
    model, spec, _ = load_model(workspace.resolve(model_row.path))
    with torch.no_grad():
        catalog_vector = model(torch.from_numpy(load_and_preprocess(outcome.path, spec)[None])).numpy()[0]
    np.testing.assert_allclose(served, catalog_vector, atol=1e-4)


def test_start_up_embeds_and_indexes_what_the_catalog_has_and_the_index_lacks(ws, tmp_path):
    from indexer.api import LiveCatalog, Workspace
    from models.embedding_store import EmbeddingStore

    draw_shape(tmp_path / "late" / "green_square" / "late.png", (40, 170, 50), "rectangle", offset=2)
    run(ws, "ingest", str(tmp_path / "late"))  # catalogued, neither embedded nor indexed
    live = LiveCatalog(Workspace.at(ws), "flat")
    assert live.held("flat").ntotal == 25
    assert len(EmbeddingStore(ws / "embeddings" / "tiny")) == 25
    answer = live.search_bytes((tmp_path / "late" / "green_square" / "late.png").read_bytes(), "late.png", k=1)
    assert answer.results[0].path.endswith("late.png")
    live.close()
    import json

    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []


def _file_ids(ws, name="flat"):
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    return set(indexed_ids(load_index(ws / "indexes" / f"{name}.faiss")[0]).tolist())


def test_writes_are_served_at_once_and_saved_to_the_index_file_by_flush(ws, tmp_path):
    from indexer.api import LiveCatalog, Workspace

    live = LiveCatalog(Workspace.at(ws), "flat", flush_s=3600)
    before = _file_ids(ws)
    data = draw_shape(tmp_path / "up.png", (10, 200, 90), "ellipse", offset=3).read_bytes()
    new_id = live.add_image(data, "up.png", label="mint").id
    victim = sorted(before)[0]
    live.delete_image(victim)
    hits = [hit.id for hit in live.search_bytes(data, "up.png", k=30).results]
    assert hits[0] == new_id and victim not in hits, "the memory copy is served at once"
    assert _file_ids(ws) == before, "the file waits for the next save"
    assert live.flush() == ["flat"]
    assert _file_ids(ws) == (before - {victim}) | {new_id}
    assert live.flush() == [], "nothing left to save"
    live.delete_image(new_id)
    live.close()  # saves what is unsaved
    assert _file_ids(ws) == before - {victim}
    import json

    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []


def test_a_large_index_is_saved_less_often_than_save_every(ws, tmp_path):
    from indexer.api import LiveCatalog, Workspace
    from indexer.api.search.live_saves import SAVE_DUTY

    live = LiveCatalog(Workspace.at(ws), "flat", flush_s=2.0)
    assert live.save_interval() == 2.0, "before any save: --save-every"
    data = draw_shape(tmp_path / "up.png", (10, 90, 200), "ellipse", offset=1).read_bytes()
    live.add_image(data, "up.png")
    assert live.flush() == ["flat"]
    took = live.last_compaction["seconds"]
    assert live.save_interval() == max(2.0, SAVE_DUTY * took)
    live.last_compaction = {**live.last_compaction, "seconds": 2.0}  # as a save of a million vectors takes
    assert live.save_interval() == 2.0 * SAVE_DUTY
    live.close()


def test_flush_leaves_an_index_file_another_process_replaced_to_the_reload(ws, tmp_path):
    from indexer.api import LiveCatalog, Workspace

    live = LiveCatalog(Workspace.at(ws), "flat", flush_s=3600)
    data = draw_shape(tmp_path / "up.png", (200, 200, 20), "rectangle", offset=-2).read_bytes()
    new_id = live.add_image(data, "up.png", label="yellow").id
    run(ws, "build", "--index", "flat", "--name", "flat")  # another process: from the catalog, new image included
    rebuilt = _file_ids(ws)
    assert new_id in rebuilt
    assert live.flush() == [], "the rebuilt file is not overwritten"
    assert _file_ids(ws) == rebuilt
    assert live.refresh() == ["flat"]
    assert live.search_bytes(data, "up.png", k=1).results[0].id == new_id
    live.close()


def test_a_query_alone_uses_the_multi_thread_session_and_gets_the_same_vector(ws, tmp_path):
    from indexer.api import LiveCatalog, Workspace

    live = LiveCatalog(Workspace.at(ws), "flat", solo_threads=2)
    engine = live.engine
    picture = live.embedder.load_bytes(draw_shape(tmp_path / "q.png", (90, 90, 200), "ellipse").read_bytes(), "q.png")
    used = []
    for name in ("_solo", "embedder"):
        session = getattr(engine, name)
        original = session.embed_images
        session.embed_images = lambda images, name=name, original=original: used.append(name) or original(images)
    alone = engine.embed_query(picture)
    engine._in_flight = 1  # as if another query were being embedded right now
    busy = engine.embed_query(picture)
    engine._in_flight = 0
    assert used == ["_solo", "embedder"]
    np.testing.assert_allclose(alone, busy, atol=1e-5)
    assert LiveCatalog(Workspace.at(ws), "flat", solo_threads=1).engine._solo is None, "no second session for one core"
    live.close()


def test_compaction_swaps_under_concurrent_queries_and_writes(ws):
    """A fold runs while a writer adds and deletes and readers query: nothing waits for it, nothing is lost."""
    import threading

    from indexer.api import LiveCatalog, Workspace
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids
    from tests.indexer.service.conftest import png_bytes

    workspace = Workspace.at(ws)
    live = LiveCatalog(workspace, "flat", flush_s=3600)  # only the explicit flushes below compact
    anchor = next(iter(live.engine.rows))
    stop, errors, rounds = threading.Event(), [], []

    def read() -> None:
        while not stop.is_set():
            hits = live.similar(anchor, k=5).results
            if len(hits) != 5 or anchor in [hit.id for hit in hits]:
                errors.append(hits)

    def write() -> None:
        for i in range(12):
            added = live.add_image(png_bytes((20 * i, 200 - 15 * i, 60), shape="rectangle", offset=i % 4),
                                   f"w{i}.png", label="w")
            if i % 3 == 0:
                live.delete_image(added.id)

    def compact() -> None:
        while not stop.is_set():
            rounds.append(live.flush())

    threads = [threading.Thread(target=read) for _ in range(3)] + [threading.Thread(target=compact)]
    for thread in threads:
        thread.start()
    write()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and any(rounds), "compactions ran while the writer wrote"
    with workspace.catalog() as catalog:
        ok_ids = sorted(row.id for row in catalog.images())
    assert live.held("flat").index.ids().tolist() == ok_ids
    live.close()
    index, _ = load_index(ws / "indexes" / "flat.faiss")
    assert indexed_ids(index).tolist() == ok_ids and live.held("flat").index.pending == 0


def test_a_graph_compacts_into_a_tail_beside_its_unchanged_file_and_a_restart_finds_it(ws, tmp_path):
    """An HNSW index: compaction folds the adds into a tail graph and keeps the deletions as marks, saved beside
    the main file, which never changes; a restart loads them with nothing pending; a CLI writer folds them in."""
    import json

    from indexer.api import LiveCatalog, Workspace
    from tests.indexer.service.conftest import png_bytes

    run(ws, "build", "--index", "hnsw", "--name", "graph")
    main_file = ws / "indexes" / "graph.faiss"
    before = main_file.stat()
    live = LiveCatalog(Workspace.at(ws), "graph", flush_s=3600)
    main_ids = sorted(int(i) for i in live.held("graph").index.ids())
    added = [live.add_image(png_bytes((30 * i, 220 - 40 * i, 90), shape="ellipse", offset=i), f"g{i}.png").id
             for i in range(4)]
    live.delete_image(main_ids[0])
    live.delete_image(added[1])
    assert live.flush() == ["flat", "graph"]  # the flat index is held (and written) too; the graph comes last
    assert live.last_compaction["index"] == "graph" and live.last_compaction["tail"]
    held = live.held("graph").index
    assert held.describe() == {"sealed": 27, "tail": 3, "growing": 0, "deleted": 1} and held.pending == 0
    after = main_file.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "the main graph file is kept"
    data = png_bytes((60, 140, 90), shape="ellipse", offset=2)
    hits = [hit.id for hit in live.search_bytes(data, "q.png", k=30).results]
    assert hits[0] == added[2] and main_ids[0] not in hits and added[1] not in hits
    live.close()
    with Workspace.at(ws).catalog() as catalog:
        ok_ids = sorted(row.id for row in catalog.images())
    again = LiveCatalog(Workspace.at(ws), "graph", flush_s=3600)
    assert again.held("graph").index.ids().tolist() == ok_ids and again.held("graph").index.pending == 0
    assert again.held("graph").index.describe()["tail"] == 3
    again.close()
    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []
    run(ws, "remove", "--id", str(added[0]))  # a CLI writer: the segments folded in, the file whole again
    sidecar = json.loads((ws / "indexes" / "graph.json").read_text())
    assert "segments" not in sidecar and sidecar["ntotal"] == len(ok_ids) - 1
    assert not list((ws / "indexes").glob("graph.*.tail")) and not list((ws / "indexes").glob("graph.*.marks"))
    assert _file_ids(ws, "graph") == set(ok_ids) - {added[0]}


def test_a_started_service_holds_its_million_ids_once(ws):
    """The row table, the stored vectors and the index list the same ids: after start-up one array serves all
    three (three copies were 23 MB at a million), and writes still answer as before."""
    from indexer.api import LiveCatalog, Workspace

    live = LiveCatalog(Workspace.at(ws), "flat")
    try:
        engine = live.engine
        table_ids = engine.rows.base.ids
        assert engine.served_vectors().base_ids is table_ids
        assert engine.held("flat").index.sealed_ids is table_ids and len(table_ids) == 24
        gone = int(table_ids[0])
        live.delete_image(gone)
        assert gone not in engine.held("flat").index.ids() and len(engine.held("flat").index.ids()) == 23
        assert int(table_ids[0]) == gone  # the shared array itself is never changed
    finally:
        live.close()
