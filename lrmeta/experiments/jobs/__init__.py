"""One module per ``lrmeta`` command, each read top to bottom as build ->
train -> judge -> transfer -> report: :mod:`~.train`, :mod:`~.select`,
:mod:`~.meta_train`, :mod:`~.evaluate` and :mod:`~.rl_train`. Each has
``run(cfg, *, quiet=False) -> summary``."""
