"""Versioned datasets: content-addressed files, immutable versions, import formats, releases.

A dataset version is a manifest of *files* (path, size, hash: what export writes back byte for
byte) and *samples* (what a model learns from: an id, the file holding it, its labels and any
annotation). Files are stored once in the artifact store, whatever the number of versions
holding them.

Layer: foundation (file formats and content-addressed objects; the operations over a store
are in :mod:`mloop.services.datasets`).
"""
