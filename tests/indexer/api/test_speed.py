"""Through the CLI: --index auto, peers beside our kinds, the data's hardness, exported vectors."""

from __future__ import annotations

import json

import numpy as np

from tests.indexer.api.conftest import run
from tests.requirements import extra, require_module


def test_build_index_auto_says_why_and_registers_the_kind_it_chose(ws) -> None:
    result = run(ws, "build", "--index", "auto", "--name", "picked")
    assert "why: N = 24 <= 10,000: exact search" in result.output
    assert "index 'picked' (Flat" in result.output
    from indexer.api import Workspace

    with Workspace.at(ws).catalog() as catalog:
        row = catalog.index("picked")
    assert row.kind == "flat"
    sidecar = json.loads(Workspace.at(ws).resolve(row.path).with_suffix(".json").read_text())
    assert sidecar["auto"]["kind"] == "flat" and "exact search" in sidecar["auto"]["reason"]
    refused = run(ws, "build", "--index", "ivf", "--max-memory-mb", "10", ok=False)
    assert refused.exit_code != 0 and "--max-memory-mb applies to --index auto only" in refused.output


def test_catalog_bench_puts_peers_and_auto_beside_our_kinds(ws, tmp_path) -> None:
    require_module("hnswlib", extra("peers"))
    out = tmp_path / "bench.json"
    result = run(ws, "bench", "--indexes", "flat,auto", "--peers", "hnswlib", "--split", "all", "--json", str(out),
                 "--plot", str(tmp_path / "curve.png"))
    report = json.loads(out.read_text())
    assert [(row["kind"], row["system"]) for row in report["results"]] == [
        ("flat", "indexer"), ("auto", "indexer"), ("hnswlib", "peer")]
    ours, auto, peer = report["results"]
    assert ours["rows_ms_p50"] > 0 and auto["auto_kind"] == "flat"
    assert peer["version"] and peer["ann_recall_at_k"] > 0 and report["sweeps"]["hnswlib"]
    assert {"n", "dim", "lid", "relative_contrast"} <= set(report["data"]) and report["data"]["n"] == 24
    assert (tmp_path / "curve-pareto.png").stat().st_size > 0
    assert "LID" in result.output


def test_synthetic_bench_exports_vectors_and_notes_a_missing_peer(tmp_path, monkeypatch) -> None:
    import indexer.bench.peer_bench as peer_bench
    from indexer.bench.peers import PeerUnavailable

    def missing(name):
        raise PeerUnavailable(f"{name}: not installed here")

    monkeypatch.setattr(peer_bench, "peer_class", missing)
    out = tmp_path / "s.json"
    result = run(tmp_path / "ws", "bench", "--synthetic", "2000", "--dim", "16", "--indexes", "flat",
                 "--queries", "30", "--peers", "usearch", "--export-vectors", str(tmp_path / "vec"), "--json", str(out))
    assert "note: peer usearch skipped: usearch: not installed here" in result.output
    report = json.loads(out.read_text())
    assert report["params"]["data"] == "realistic" and report["data"]["lid"] > 1
    base, queries, gt = (np.load(tmp_path / "vec" / f"{name}.npy") for name in ("base", "queries", "gt"))
    assert base.shape == (2000, 16) and queries.shape == (30, 16) and gt.shape == (30, 100)
    assert (gt[:, 0] == np.argmax(queries @ base.T, axis=1)).all()
    blobs = run(tmp_path / "ws", "bench", "--synthetic", "2000", "--dim", "16", "--indexes", "flat",
                "--queries", "30", "--data", "blobs")
    assert "synthetic (blobs)" in blobs.output
    bad = run(tmp_path / "ws", "bench", "--synthetic", "2000", "--peers", "annoy", ok=False)
    assert bad.exit_code != 0 and "unknown peer(s) annoy" in bad.output
