"""The config room: a run's settings and the files they live in.

One dataclass per concern with defaults and presets (settings.py), the TOML reader and
writer (file.py), and the names of a run folder's files (run_files.py).
`python -m rnncli.config` prints the table of config keys.

Imports: model (the cell and pooling registries, to check names), text, errors, fsutil.
"""
