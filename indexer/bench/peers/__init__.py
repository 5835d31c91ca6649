"""Peer systems for the bench, one small module each, imported only when asked for."""

from __future__ import annotations

import importlib

from indexer.bench.peers.base import FilterUnsupported, Peer, PeerUnavailable
from indexer.bench.peers.field_filter import FieldFilter

PEERS: dict[str, str] = {
    "hnswlib": "indexer.bench.peers.hnswlib_peer:HnswlibPeer",
    "usearch": "indexer.bench.peers.usearch_peer:UsearchPeer",
    "chromadb": "indexer.bench.peers.chroma_peer:ChromaPeer",
    "lancedb": "indexer.bench.peers.lance_peer:LancePeer",
    "milvus-lite": "indexer.bench.peers.milvus_peer:MilvusLitePeer",
}

__all__ = ["PEERS", "FieldFilter", "FilterUnsupported", "Peer", "PeerUnavailable", "peer_class"]


def peer_class(name: str) -> type[Peer]:
    """The adapter class for peer ``name``; PeerUnavailable when its package is missing.

    An unknown name is the caller's error (KeyError is turned into InputError by the bench).
    """
    module_name, _, class_name = PEERS[name].partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except ImportError as exc:
        raise PeerUnavailable(f"{name}: cannot import its package ({exc}); pip install 'indexer[peers]'") from None
    cls.version()
    return cls
