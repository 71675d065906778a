"""``run_all``: run every notebook and write the results index (``python -m renet_core.runall``,
:mod:`.__main__`); the job supervision in :mod:`.jobs`, the index in :mod:`.index`."""
