"""Layer 5, the entry points of the command line: ``python -m renet_core`` (:mod:`.main`) and
the one-run-per-GPU launcher (:mod:`.launch`). ``run_all`` (:mod:`renet_core.runall`) and the
benchmarks (:mod:`renet_core.bench`) are entry points too. Nothing below imports them."""
