"""``python3 -m lrmeta.data [NAME ...]``: where each dataset is read from.

Prints one line per dataset (default: all), ``fashion_mnist: Fashion-MNIST
from /usr/share/datasets/fashion-mnist (...)`` or ``cifar10: missing:
CIFAR-10 not found; ...`` (the one line naming the ways to get it), reading
no images, and exits with status 1 when any is missing. ``.ci/run`` runs it
before the tests so that CI fails naming the missing data.
"""

from __future__ import annotations

import sys

from lrmeta.data import DATASETS, DataNotFoundError, data_source


def main(argv: list[str] | None = None) -> int:
  names = (sys.argv[1:] if argv is None else argv) or list(DATASETS)
  missing = 0
  for name in names:
    try:
      print(f"{name}: {data_source(name).describe()}")
    except (DataNotFoundError, ValueError) as e:
      print(f"{name}: missing: {' '.join(str(e).split())}")
      missing += 1
  return 1 if missing else 0


if __name__ == "__main__":
  sys.exit(main())
