"""The data room: the IMDB corpus and prepared datasets on disk.

Sources (the Stanford archive by URL or local path, Keras's imdb.npz), the archive reader
with its limits, fetching and preparing a build, importing a labelled dataset of one's own
(own.py: a table or a folder of LABEL/*.txt, 2 or more labels, stored by name), the store
readers use (vocabulary, splits, encoded matrices) and the `data` reports (info, decode,
lengths, list).

Imports: text, config, errors, fsutil. Nothing from model, train, export or serve.
"""
