"""Property-based tests of the environments (Hypothesis): random valid action sequences never
break the invariants, random invalid inputs always raise InputError and nothing else.

CI runs a few examples per property (seconds); `HYPOTHESIS_PROFILE=long python -m pytest
tests/test_fuzz_envs.py` runs many more.
"""

import os

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from envs import InputError
from envs.bridge import N_ACTIONS as BRIDGE_ACTIONS
from envs.bridge import BridgeEnv
from envs.matrix import PAYOFFS, MatrixGameEnv
from envs.smac import MAPS, SMACBatch, SMACParallelEnv

settings.register_profile("ci", max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

picks = st.lists(st.integers(0, 2**16), min_size=1, max_size=64)


def choose(avail: np.ndarray, picks: list[int], t: int) -> np.ndarray:
    """For every battle and agent, the (picks[t + k] mod #available)-th available action."""
    B, N, A = avail.shape
    out = np.zeros((B, N), np.int64)
    for b in range(B):
        for i in range(N):
            allowed = np.flatnonzero(avail[b, i])
            out[b, i] = allowed[picks[(t + b * N + i) % len(picks)] % len(allowed)]
    return out


@given(map_name=st.sampled_from(list(MAPS)), seed=st.integers(0, 2**32 - 1), n_battles=st.integers(1, 3), picks=picks)
def test_smac_random_valid_play_keeps_the_invariants(map_name, seed, n_battles, picks):
    battles = SMACBatch(map_name, n_battles, seed=seed, auto_reset=False)
    obs, state, avail = battles.reset()
    running = np.ones(n_battles, bool)
    for t in range(battles.episode_limit + 1):
        alive = battles.alive[:, : battles.n_agents]
        # masks: the dead have the no-op only; the living never have it, and always have stop
        assert (avail[~alive] == np.eye(battles.n_actions, dtype=avail.dtype)[0]).all()
        assert (avail[alive][:, 0] == 0).all() and (avail[alive][:, 1] == 1).all()
        assert obs.shape == (n_battles, battles.n_agents, battles.obs_dim) and np.abs(obs).max() <= 1.0
        assert state.shape == (n_battles, battles.state_dim) and state.min() >= -1.0 and state.max() <= 2.0
        if not running.any():
            break
        obs, state, avail, reward, terminated, info = battles.step(choose(avail, picks, t))
        assert np.isfinite(reward).all() and (reward >= 0).all()
        assert not (info["battle_won"] & ~terminated).any()
        running &= ~terminated
    assert not running.any() and t <= battles.episode_limit  # every battle ended by the limit


@given(
    actions=st.one_of(
        st.tuples(
            hnp.arrays(np.int64, hnp.array_shapes(max_dims=3, max_side=6), elements=st.integers(-3, 20)),
            st.sampled_from([np.int64, np.int32, np.float64, np.bool_]),
        ).map(lambda pair: pair[0].astype(pair[1])),
        st.lists(st.integers(-5, 20), max_size=8),
        st.none(),
        st.text(max_size=5),
        st.floats(),
    )
)
def test_smac_invalid_actions_raise_input_error_only(actions):
    battles = SMACBatch("2s3z", 2, seed=0, auto_reset=False)
    _, _, avail = battles.reset()
    valid = (
        np.asarray(actions).dtype.kind in "iu"
        and np.shape(actions) == (2, 5)
        and bool(np.take_along_axis(avail, np.clip(np.asarray(actions), 0, 10)[..., None], -1).all())
        and bool(((np.asarray(actions) >= 0) & (np.asarray(actions) < 11)).all())
    )
    if valid:
        battles.step(actions)
        return
    try:
        battles.step(actions)
    except InputError:
        return
    raise AssertionError(f"step({actions!r}) was accepted")


@given(seed=st.integers(0, 2**32 - 1), picks=picks)
def test_smac_parallel_env_observations_stay_in_their_spaces(seed, picks):
    env = SMACParallelEnv("2s3z", seed=seed)
    observations, _ = env.reset()
    t = 0
    while env.agents:
        for agent, ob in observations.items():
            assert env.observation_space(agent).contains(ob)
        assert env.state_space.contains(env.state())
        avail = np.stack([observations[a]["action_mask"] for a in env.agents])[None]
        chosen = choose(avail, picks, t)[0]
        observations, rewards, terminations, truncations, _ = env.step({a: int(c) for a, c in zip(env.agents, chosen)})
        assert all(np.isfinite(r) for r in rewards.values())
        t += 1
    assert t <= env.episode_limit


@given(picks=picks)
def test_bridge_random_play_stays_on_the_board_and_ends_by_the_horizon(picks):
    env = BridgeEnv()
    observations, _ = env.reset()
    t = 0
    while env.agents:
        for agent, ob in observations.items():
            assert env.observation_space(agent).contains(ob)
        actions = {a: picks[(t * 2 + i) % len(picks)] % BRIDGE_ACTIONS for i, a in enumerate(env.agents)}
        observations, rewards, _, _, _ = env.step(actions)
        assert all(np.isfinite(r) and r <= 0 for r in rewards.values())
        t += 1
    assert 1 <= t <= env.core.horizon


@given(
    game=st.sampled_from(list(PAYOFFS)),
    a=st.integers(0, 2),
    b=st.integers(0, 2),
    junk=st.one_of(st.integers(-5, 5), st.floats(), st.booleans(), st.text(max_size=3), st.none()),
)
def test_matrix_game_pays_the_payoff_and_rejects_junk(game, a, b, junk):
    env = MatrixGameEnv(game)
    n = PAYOFFS[game].shape[0]
    env.reset()
    if a < n and b < n:
        _, rewards, terminations, _, _ = env.step({"agent_0": a, "agent_1": b})
        assert rewards["agent_0"] == PAYOFFS[game][a, b] and all(terminations.values()) and env.agents == []
    env.reset()
    if isinstance(junk, int) and not isinstance(junk, bool) and 0 <= junk < n:
        return
    try:
        env.step({"agent_0": junk, "agent_1": 0})
    except InputError:
        return
    raise AssertionError(f"action {junk!r} was accepted")
