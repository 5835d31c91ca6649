"""The FAISS core: index kinds, build, search, tuning, fidelity, label metrics and index files.

Takes and returns numpy arrays; imports numpy, faiss and the standard library only (an
import-linter contract keeps it so).
"""
