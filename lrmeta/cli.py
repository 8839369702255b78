"""The ``lrmeta`` console script; the parser lives in
:mod:`lrmeta.experiments.cli` (``lrmeta <command> --help``)."""

import sys

from lrmeta.experiments.cli import main

__all__ = ["main"]

if __name__ == "__main__":
  sys.exit(main())
