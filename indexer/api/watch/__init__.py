"""Folders that stay indexed: a watcher that follows image folders into the catalog, the store and the indexes.

:mod:`settings` (what to watch and how), :mod:`settle` (temporary names, the wait for a file to stop
changing), :mod:`events` (the file-system events, inotify or a periodic scan), :mod:`scan` (a folder compared
with the catalog), :mod:`apply` (one batch of settled paths applied through the live write path),
:mod:`status` (what a face shows) and :mod:`watcher` (the thread that joins them).
"""
