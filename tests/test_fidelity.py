"""benchmarks/smac_fidelity.py's measures on hand-built episodes whose answers are known."""

import numpy as np

from benchmarks.smac_fidelity import coverage, first_parting_step, saco


def test_joint_saco_distinct_episodes_and_where_observations_part():
    """Three episodes of 3 steps (T = 4 slots, the last the terminal one): 0 and 1 identical, 2 parts from them
    in its observation at step 2 and in its state at step 1. Pairs: 9 transitions, 3 + 2 distinct ones -> SACo
    5/9 over all, 5/6 over the 2 distinct episodes. Values equal at 4 decimals count as one (OG-MARL rounds)."""
    n, t, agents = 3, 4, 2
    state = np.zeros((n, t, 3), np.float32)
    state[:, :, 0] = np.arange(t)
    state[2, 1:, 1] = 1.0
    state[1, 0, 2] = 1e-6  # below the rounding
    obs = np.zeros((n, t, agents, 2), np.float32)
    obs[2, 2:, 0, 1] = 0.5
    actions = np.ones((n, t, agents), np.int64)
    length = np.array([3, 3, 3])
    hashes = coverage(state, obs, actions, length)
    assert len(np.unique(hashes["episode"])) == 2 and hashes["episode"][0] == hashes["episode"][1]
    assert saco(hashes["pairs"]) == 5 / 9
    assert saco([hashes["pairs"][0], hashes["pairs"][2]]) == 5 / 6
    assert first_parting_step(hashes["prefix"], length) == 2
    # an episode that ended is no longer compared: episode 2 cut after step 1 leaves 0 and 1, which never part
    length = np.array([3, 3, 1])
    assert first_parting_step(coverage(state, obs, actions, length)["prefix"], length) is None
