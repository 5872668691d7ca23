"""A suite for gpu_check.sh's dry run (not collected by CI: the name does not start with test_):
two quick tests, then one that outlasts any time box, so the tests stage is always stopped by
SIGINT with results to keep."""

import time


def test_quick_one():
    assert sum(range(4)) == 6


def test_quick_two():
    assert "gpu".upper() == "GPU"


def test_outlasts_the_box():
    time.sleep(3600)
