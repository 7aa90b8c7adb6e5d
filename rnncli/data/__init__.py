"""The data room: the IMDB corpus and prepared datasets on disk.

Sources (the Stanford archive by URL or local path, Keras's imdb.npz), the archive reader
with its limits, fetching and preparing a build, the store readers use (vocabulary, splits,
encoded matrices) and the `data` reports (info, decode, lengths).

Imports: text, config, errors, fsutil. Nothing from model, train, export or serve.
"""
