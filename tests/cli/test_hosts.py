"""``--gpus`` against this host's CUDA devices (``phonetune.cli.hosts``): indices only, each one a device here."""

from __future__ import annotations

import pytest

from phonetune.cli.hosts import parse_gpus
from phonetune.errors import ConfigError


def test_gpus_are_checked_against_the_devices_of_the_host():
    # The count is what a host with four GPUs reports; the CLI passes torch's own count.
    assert parse_gpus("0, 1,3", count=4) == ["0", "1", "3"]
    assert parse_gpus("", count=0) == []
    with pytest.raises(ConfigError, match=r"--gpus 2,7 names GPU 7, which does not exist: this host has 4 CUDA "
                                          r"devices: 0,1,2,3"):
        parse_gpus("2,7", count=4)
    with pytest.raises(ConfigError, match=r"--gpus must be .* but got '0,x'.*this host has 4 CUDA devices"):
        parse_gpus("0,x", count=4)
