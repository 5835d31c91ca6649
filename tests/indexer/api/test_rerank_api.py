"""--rerank through the faces: query (qe, dba), build (dba recorded in the sidecar), bench rows."""

from __future__ import annotations

import json

from tests.indexer.api.conftest import image_path as _image
from tests.indexer.api.conftest import run


def test_query_with_expansion_answers_and_equals_the_core_routine(trained, ws):
    from indexer.api.registry.indexes import catalog_vectors
    from indexer.api.search.query import Searcher
    from indexer.api.workspace import Workspace
    from indexer.core.rerank import Rerank, lookup_vectors, search_expanded
    from models.images import open_rgb

    image = _image(trained, "blue_triangle", 1)
    answers = json.loads(run(ws, "query", image, "--index", "flat", "-k", "4", "--rerank", "qe", "--json").stdout)
    assert len(answers[0]["results"]) == 4
    workspace = Workspace.at(ws)
    searcher = Searcher(workspace, "flat")
    ids, vectors = catalog_vectors(workspace, "tiny")
    query = searcher.embedder.embed_images([open_rgb(image)])
    _, expected = search_expanded(searcher.index, query, 4, lookup_vectors(ids, vectors), Rerank("qe"))
    assert [hit["id"] for hit in answers[0]["results"]] == expected[0].tolist()


def test_build_with_dba_records_it_and_query_dba_needs_it(trained, ws):
    refused = run(ws, "query", _image(trained), "--index", "flat", "--rerank", "dba", ok=False)
    assert refused.exit_code == 1 and "--rerank dba" in refused.output and "Traceback" not in refused.output
    run(ws, "build", "--index", "flat", "--name", "flatdba", "--rerank", "dba", "--rerank-n", "2")
    sidecar = json.loads((ws / "indexes" / "flatdba.json").read_text())
    assert sidecar["rerank"]["mode"] == "dba" and sidecar["rerank"]["n"] == 2
    answers = json.loads(run(ws, "query", _image(trained), "--index", "flatdba", "--rerank", "dba", "--json").stdout)
    scores = [hit["score"] for hit in answers[0]["results"]]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True)
    plain = json.loads(run(ws, "query", _image(trained), "--index", "flat", "--json").stdout)
    assert scores != [hit["score"] for hit in plain[0]["results"]]  # the stored vectors were augmented


def test_build_refuses_qe(ws):
    result = run(ws, "build", "--index", "flat", "--rerank", "qe", ok=False)
    assert result.exit_code == 2  # a usage error: qe is done at query time, not a choice for build
    assert "Error: Invalid value for '--rerank': 'qe' is not one of 'none', 'dba'." in result.output


def test_bench_rows_say_which_rerank(ws, tmp_path):
    out = tmp_path / "b.json"
    run(ws, "bench", "--indexes", "flat", "--split", "all", "--rerank", "qe", "--json", str(out))
    report = json.loads(out.read_text())
    assert report["results"][0]["rerank"].startswith("qe(") and report["params"]["rerank"]["mode"] == "qe"
    assert report["results"][0]["rerank_ms_p50"] > 0
