"""envs/alberdice.py: AlberDICE's PyMARL buffer layout flattened to transitions, on a hand-built buffer."""

import numpy as np

from envs.alberdice import transitions_from_buffer


def buffer():
    """Two episodes of 2 agents, 3 actions, 4 slots: episode 0 takes 3 steps (slot 3 holds its final
    state), episode 1 takes 1 step then pads. Every value says where it came from: state = 10·ep + t,
    obs = state + agent/10, action = (t + agent) % 3, reward = -t, and at step t action t % 3 is unavailable."""
    n_ep, n_slots, n_agents, n_actions = 2, 4, 2, 3
    ep, t = np.meshgrid(np.arange(n_ep), np.arange(n_slots), indexing="ij")
    filled = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    state = (10 * ep + t)[..., None].astype(float)
    obs = state[:, :, None, :] + np.arange(n_agents)[None, None, :, None] / 10
    actions = (t[..., None] + np.arange(n_agents)) % n_actions
    avail = np.ones((n_ep, n_slots, n_agents, n_actions))
    avail[ep, t, :, t % n_actions] = 0
    avail[1, 2:] = 0  # padding
    terminated = np.zeros((n_ep, n_slots))
    terminated[0, 2] = terminated[1, 0] = 1
    return {
        "state": state,
        "obs": obs,
        "actions": actions[..., None],
        "avail_actions": avail,
        "reward": -t[..., None].astype(float),
        "terminated": terminated[..., None],
        "filled": filled[..., None],
    }


def test_transitions_pair_every_step_with_the_next_slot():
    out = transitions_from_buffer(buffer())
    assert out["episode"].tolist() == [0, 0, 0, 1]
    steps = np.array([0, 1, 2, 0])
    np.testing.assert_array_equal(out["state"][:, 0], 10 * out["episode"] + steps)
    np.testing.assert_array_equal(out["next_state"][:, 0], 10 * out["episode"] + steps + 1)
    np.testing.assert_allclose(out["next_obs"][:, 1, 0], 10 * out["episode"] + steps + 1 + 0.1)
    np.testing.assert_array_equal(out["actions"], (steps[:, None] + np.arange(2)) % 3)
    np.testing.assert_array_equal(out["reward"], -steps)
    np.testing.assert_array_equal(out["done"], [0, 0, 1, 1])
    for k, t in enumerate(steps):  # the masks of this step and of the next one
        assert out["avail"][k, :, t % 3].sum() == 0 and out["avail"][k].sum() == 4
        assert out["next_avail"][k, :, (t + 1) % 3].sum() == 0 and out["next_avail"][k].sum() == 4


def test_a_horizon_cuts_episodes_into_truncations():
    out = transitions_from_buffer(buffer(), horizon=2)
    assert out["episode"].tolist() == [0, 0, 1]
    np.testing.assert_array_equal(out["done"], [0, 0, 1])  # step 1 of episode 0 is cut, not terminal
    np.testing.assert_array_equal(out["next_state"][:, 0], [1, 2, 11])
