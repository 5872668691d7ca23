"""``python -m pygan.eval RUN_DIR_or_CHECKPOINT --metrics swd,msssim,fid,kid,pr``: see
:mod:`pygan.metrics.cli`."""

import sys

from .metrics.cli import main

if __name__ == "__main__":
    sys.exit(main())
