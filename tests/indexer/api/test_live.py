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
