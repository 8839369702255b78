import sys

from lrmeta.cli import main

sys.exit(main())
