"""The train room: fitting a model.

The fit loop and run assembly (loop.py), batches, the objective (optimizer, loss,
metrics), teachers for distillation, fitting the n-gram head (head.py), run folders and
their lock (runs.py), epoch tracking, the learning curves (curves.py), and multi-worker
training with the process that watches it (distributed.py).

Imports: data, serve (finding teacher models), model, text, config, errors, fsutil.
Nothing from export.
"""
