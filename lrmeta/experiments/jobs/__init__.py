"""One module per ``lrmeta`` command, each read top to bottom as build ->
train -> judge -> transfer -> report: :mod:`~.train`, :mod:`~.select`,
:mod:`~.meta_train`, :mod:`~.evaluate` (and ``rl-train``'s job). Each has
``run(cfg, *, quiet=False) -> summary``."""
