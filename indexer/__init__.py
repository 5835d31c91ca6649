"""Image query system: catalog, embeddings, FAISS indices, benchmarks."""
