"""Entry point of ``python -m pygan.train`` (and ``torchrun -m pygan.train``)."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
