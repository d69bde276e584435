"""Long frame sequences: the command line's maps do not change when the frames are streamed."""

from __future__ import annotations

import numpy as np
from sequence_golden import CASES, GOLDEN, run_cases

from lib_depth.cli.main import main


def test_sequence_maps_match_the_golden_file(tmp_path):
    """The maps written before streaming (tests/data/sequence-golden.npz) are written again, exactly."""
    golden = np.load(GOLDEN)
    assert set(golden.files) == set(CASES)
    maps = run_cases(tmp_path, main)
    for name in CASES:
        difference = np.abs(maps[name].astype(np.int64) - golden[name].astype(np.int64))
        assert difference.max() == 0, (name, int(difference.max()))
