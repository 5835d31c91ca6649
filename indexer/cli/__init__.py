"""The command line's parts. ``cli.py`` (the ``indexer`` entry point) holds the group, the catalog and service
commands, and adds these modules' commands to it. Like ``cli.py`` they import click, the standard library and
:mod:`indexer.api` only (an import-linter contract keeps it so).
"""
