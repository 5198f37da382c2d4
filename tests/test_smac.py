"""The built-in SMAC simulator against SMAC: sizes, rules, rewards, determinism, APIs."""

import importlib.util

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test, state_test
from pettingzoo.utils.conversions import parallel_to_aec

from conftest import install_fake_smac
from envs import InputError
from envs.smac import (
    MAPS,
    N_NO_ATTACK,
    SCRIPTED_POLICIES,
    UNITS,
    SMACBatch,
    SMACParallelEnv,
    StarCraft2Env,
    make_env,
    packed_spawn,
    play_scripted,
    scripted_actions,
)

HAS_REAL_SMAC = importlib.util.find_spec("smac") is not None and importlib.util.find_spec("smac.env") is not None
BACKENDS = ["sim"] + (["sc2"] if HAS_REAL_SMAC else [])

# §2.1, §2.3, §4, §5: SMAC's sizes and reward divisors
SIZES = {
    "2s3z": (80, 120, 11, 120, 5, 1020),
    "3s_vs_5z": (48, 68, 11, 250, 3, 1000),
    "5m_vs_6m": (55, 98, 12, 70, 5, 530),
    "6h_vs_8z": (78, 140, 14, 150, 6, 1480),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("map_name", list(MAPS))
def test_sizes_match_smac(map_name, backend):
    obs_dim, state_dim, n_actions, limit, n_agents, max_reward = SIZES[map_name]
    env = make_env(map_name, backend, seed=0)
    info = env.get_env_info()
    assert (info["obs_shape"], info["state_shape"], info["n_actions"], info["episode_limit"], info["n_agents"]) == (
        obs_dim,
        state_dim,
        n_actions,
        limit,
        n_agents,
    )
    obs, state = env.reset()
    assert len(obs) == n_agents and obs[0].shape == (obs_dim,) and obs[0].dtype == np.float32
    assert state.shape == (state_dim,) and state.dtype == np.float32
    assert np.array(env.get_avail_actions()).shape == (n_agents, n_actions)
    if backend == "sim":
        assert env.max_reward == max_reward
    env.close()


def test_smac_accessors_agree_with_the_whole_observation_and_the_step():
    """SMAC's per-agent and size accessors (§2) say what get_obs, get_state and get_avail_actions say;
    last_action is all zeros after reset, then the one-hot of the actions passed to step."""
    obs_dim, state_dim, n_actions, _, n_agents, _ = SIZES["2s3z"]
    env = make_env("2s3z", "sim", seed=5)
    assert env.seed() == 5 and (env.get_obs_size(), env.get_state_size(), env.get_total_actions()) == (
        obs_dim,
        state_dim,
        n_actions,
    )
    obs, state = env.reset()
    assert not env.last_action.any() and env.last_action.shape == (n_agents, n_actions)
    for i in range(n_agents):
        np.testing.assert_array_equal(env.get_obs_agent(i), obs[i])
        assert env.get_avail_agent_actions(i) == env.get_avail_actions()[i]
    np.testing.assert_array_equal(env.get_state(), state)
    actions = [int(np.flatnonzero(avail)[-1]) for avail in env.get_avail_actions()]
    env.step(actions)
    np.testing.assert_array_equal(env.last_action, np.eye(n_actions, dtype=np.float32)[actions])
    assert [int(np.flatnonzero(row)[0]) for row in env.last_action] == actions


# §2.1: (ally race, enemy race, unit_type_bits)
RACES = {"2s3z": ("P", "P", 2), "3s_vs_5z": ("P", "P", 0), "5m_vs_6m": ("T", "T", 0), "6h_vs_8z": ("Z", "P", 0)}


@pytest.mark.parametrize("map_name", list(MAPS))
def test_env_info_feature_names_and_public_attributes(map_name):
    """§2: upstream SMAC's feature-name lists (shield iff Protoss, then the type bits), which with the
    last actions make up the state; the map's public attributes (32×32, §2.2)."""
    ally_race, enemy_race, type_bits = RACES[map_name]
    env = StarCraft2Env(map_name)
    info = env.get_env_info()
    types = [f"type_{k}" for k in range(type_bits)]
    assert (
        info["agent_features"]
        == ["health", "energy/cooldown", "rel_x", "rel_y"] + ["shield"] * (ally_race == "P") + types
    )
    assert info["enemy_features"] == ["health", "rel_x", "rel_y"] + ["shield"] * (enemy_race == "P") + types
    assert info["state_shape"] == (
        len(info["agent_features"]) * env.n_agents
        + len(info["enemy_features"]) * env.n_enemies
        + env.n_agents * env.n_actions
    )
    assert (env.map_x, env.map_y, env.max_distance_x, env.max_distance_y, env.pathing_grid.shape) == (
        32,
        32,
        32,
        32,
        (32, 32),
    )
    assert env.n_actions == 6 + env.n_enemies and env.episode_limit == SIZES[map_name][3]


def test_a_won_battle_through_smacs_interface():
    """step's info and get_stats over one clean 2s3z win (focus fire, on a battle seed where it wins: with the
    variety rules it wins about three battles in four): every enemy dead, the return 20."""
    env = StarCraft2Env("2s3z", seed=1)
    env.reset()
    rng, total, terminated = np.random.default_rng(0), 0.0, False
    while not terminated:
        reward, terminated, info = env.step(scripted_actions(env._battle, "focus-fire", rng)[0])
        total += reward
    assert info["battle_won"] and info["dead_enemies"] == 5 and 0 <= info["dead_allies"] < 5
    assert total == pytest.approx(20.0, abs=1e-4)
    assert env.get_stats() == {
        "battles_won": 1,
        "battles_game": 1,
        "battles_draw": 0,
        "win_rate": 1.0,
        "timeouts": 0,
        "restarts": 0,
    }


def test_the_sc2_back_end_is_smacs_starcraft2env_with_the_map_and_seed(monkeypatch):
    """make_env(..., 'sc2') builds SMAC's own StarCraft2Env (here a stand-in module) for the map and seed asked."""
    made = []
    install_fake_smac(monkeypatch, lambda **kwargs: made.append(kwargs) or "the real game")
    assert make_env("6h_vs_8z", "sc2", seed=7) == "the real game" and made == [{"map_name": "6h_vs_8z", "seed": 7}]


def battle(map_name: str, keep_allies=(0,), keep_enemies=(0,), variety=False, seed=0) -> SMACBatch:
    """One battle with every unit not kept removed (dead), ready for a hand-placed scenario."""
    b = SMACBatch(map_name, 1, seed=seed, variety=variety)
    b.reset()
    n_agents = b.n_agents
    for u in range(b.n_units):
        kept = u in keep_allies if u < n_agents else (u - n_agents) in keep_enemies
        if not kept:
            b.alive[0, u], b.hp[0, u], b.shield[0, u] = False, 0.0, 0.0
    b.counted_dead[0] = ~b.alive[0, n_agents:]
    return b


def place(b: SMACBatch, unit: int, x: float, y: float) -> None:
    b.x[0, unit], b.y[0, unit] = x, y


def stop_all(b: SMACBatch) -> np.ndarray:
    return np.where(b.alive[:, : b.n_agents], 1, 0)


def test_damage_shields_first_armour_bonus_and_two_zealot_hits():
    # a stalker shoots a zealot 5 away: 13 to the shields
    b = battle("3s_vs_5z")
    place(b, 0, 10, 16), place(b, 3, 15, 16)
    b.step(np.array([[6, 0, 0]]))
    assert (b.shield[0, 3], b.hp[0, 3]) == (37.0, 100.0)
    assert b.cooldown[0, 0] > 20  # 29.92 loops + jitter, minus the loops since
    # a zealot next to a stalker hits twice for 8: shields 80 -> 64
    b = battle("3s_vs_5z")
    place(b, 0, 10, 16), place(b, 3, 11.15, 16)
    b.step(np.array([[1, 0, 0]]))
    assert (b.shield[0, 0], b.hp[0, 0]) == (64.0, 80.0)
    # overflow: 5 shield left, 8 + 8 -> 5 absorbed, (3 - 1) + (8 - 1) = 9 to HP (armour 1 per hit)
    b = battle("3s_vs_5z")
    place(b, 0, 10, 16), place(b, 3, 11.15, 16)
    b.shield[0, 0] = 5.0
    b.step(np.array([[1, 0, 0]]))
    assert (b.shield[0, 0], b.hp[0, 0]) == (0.0, 71.0)
    # a stalker vs an (armoured) stalker: 13 + 5 on shields
    b = battle("2s3z", keep_allies=(0,), keep_enemies=(0,))
    place(b, 0, 10, 16), place(b, 5, 15, 16)
    b.cooldown[0, 5] = 100.0  # the enemy stalker must not shoot back in this step
    b.step(np.array([[6, 0, 0, 0, 0]]))
    assert b.shield[0, 5] == 80 - 18
    # a marine vs a marine: 6
    b = battle("5m_vs_6m")
    place(b, 0, 10, 16), place(b, 5, 14, 16)
    b.cooldown[0, 5] = 100.0
    b.step(np.array([[6, 0, 0, 0, 0]]))
    assert b.hp[0, 5] == 45 - 6


def test_overlapping_units_are_pushed_apart_by_half_the_overlap_each():
    """Two stopped marines 0.3 apart (contact 0.75 = two radii): one game loop moves each 0.225 away."""
    b = battle("5m_vs_6m", keep_allies=(0, 1), keep_enemies=())
    place(b, 0, 10, 16), place(b, 1, 10.3, 16)
    b._issue_orders(np.array([[1, 1, 0, 0, 0]]))
    b._game_loop()
    np.testing.assert_allclose(b.x[0, :2], [9.775, 10.525])
    np.testing.assert_allclose(b.y[0, :2], [16, 16])


def test_cooldown_period_with_jitter():
    """A marine firing at a distant dummy: shot intervals are 13.77 loops + U{-1..2}, mean ~14.3."""
    b = battle("5m_vs_6m")
    place(b, 0, 10, 16), place(b, 5, 14, 16)
    b.hp[0, 5] = b.u_hp[5] = 1e4  # a dummy that does not die in 2000 loops
    b.u_damage[5] = 0.0  # and never hurts
    shots = []
    b._issue_orders(np.array([[6, 0, 0, 0, 0]]))
    for loop in range(2000):
        before = b.hp[0, 5]
        b._game_loop()
        if b.hp[0, 5] < before:
            shots.append(loop)
    gaps = np.diff(shots)
    assert set(np.unique(gaps)) <= {12, 13, 14, 15, 16}
    assert 13.9 < gaps.mean() < 14.7


def test_shield_and_hydralisk_regeneration():
    b = battle("3s_vs_5z")
    place(b, 0, 1, 1), place(b, 3, 31, 31)  # the zealot walks to (9, 16) and never sees the stalker
    b.shield[0, 0], b.since_damage[0, 0] = 10.0, 0.0
    for _ in range(19):  # 152 loops: no regeneration before 160 loops without damage
        b.step(stop_all(b))
    assert b.shield[0, 0] == 10.0
    for _ in range(5):  # loops 153..192
        b.step(stop_all(b))
    assert 10 + 0.125 * 30 <= b.shield[0, 0] <= 10 + 0.125 * 34
    b = battle("6h_vs_8z")
    place(b, 6, 20, 17)
    b.hp[0, 0] = 40.0
    b.step(np.array([[1, 0, 0, 0, 0, 0]]))
    assert b.hp[0, 0] == pytest.approx(40 + 8 * 0.2734 / 16)


def test_availability_edges_range_and_death():
    b = battle("2s3z", keep_allies=(0, 1), keep_enemies=(0,))
    place(b, 0, 10, 23.2)  # north probes y = 24.2: outside the band
    place(b, 5, 16, 23.2)  # 6.0 away: attackable (<= 6)
    avail = b.get_avail_actions()[0, 0]
    assert avail.tolist()[:6] == [0, 1, 0, 1, 1, 1] and avail[6] == 1
    place(b, 5, 16.01, 23.2)
    assert b.get_avail_actions()[0, 0, 6] == 0
    place(b, 0, 10, 8.5)  # south probes y = 7.5: below the band
    assert b.get_avail_actions()[0, 0, 3] == 0
    # a dead agent: only the no-op, an all-zero observation and zero state rows
    b.alive[0, 1], b.hp[0, 1], b.shield[0, 1] = False, 0.0, 0.0
    assert b.get_avail_actions()[0, 1].tolist() == [1] + [0] * 10
    assert not b.get_obs()[0, 1].any()
    assert not b.get_state()[0, 7:14].any()
    # a stalker killed in a step dies: its actions become the no-op only
    b2 = battle("3s_vs_5z")
    place(b2, 0, 10, 16), place(b2, 3, 11.15, 16)
    b2.hp[0, 0], b2.shield[0, 0] = 5.0, 0.0
    _, _, avail, reward, terminated, info = b2.step(np.array([[1, 0, 0]]))
    assert terminated[0] and not info["battle_won"][0]


def test_no_move_off_the_map_on_an_open_map():
    """3s_vs_5z is pathable everywhere: only the map's edge stops a move (a probe cell at 32 is outside)."""
    b = battle("3s_vs_5z", keep_allies=(0,), keep_enemies=(0,))
    place(b, 3, 16, 16)
    place(b, 0, 31.5, 0.5)  # east probes x = 32, south y = -0.5 (truncated to 0, inside, as SMAC's int())
    assert b.get_avail_actions()[0, 0, 2:6].tolist() == [1, 1, 0, 1]  # north, south, east, west
    place(b, 0, 0.5, 31.5)  # north probes y = 32
    assert b.get_avail_actions()[0, 0, 2:6].tolist() == [0, 1, 1, 1]


def test_layout_and_the_2s3z_unit_type_quirk():
    b = SMACBatch("2s3z", 1, seed=0)
    obs, state, avail = b.reset()
    # own features of agent 0 (a stalker): health, shield, type [1, 0]; agent 2 (a zealot): [0, 1]
    assert obs[0, 0, -4:].tolist() == [1, 1, 1, 0] and obs[0, 2, -4:].tolist() == [1, 1, 0, 1]
    # state: ally rows of 7 then enemy rows of 6; enemy 0 is a stalker, typed [0, 1]; zealot [1, 0]
    enemy_rows = state[0, 35:65].reshape(5, 6)
    assert enemy_rows[0, -2:].tolist() == [0, 1] and enemy_rows[2, -2:].tolist() == [1, 0]
    assert state[0, 65:].sum() == 0  # no last action after reset
    ally_rows = state[0, :35].reshape(5, 7)
    assert np.allclose(ally_rows[:, 2] * 32 + 16, b.x[0, :5]) and np.allclose(ally_rows[:, 3] * 32 + 16, b.y[0, :5])
    # SMAC numbers the agents by (type, x, y): stalkers 0-1, then zealots by x
    assert np.all(np.diff(b.x[0, :2]) >= 0) and np.all(np.diff(b.x[0, 2:5]) >= 0)
    obs, state, *_ = b.step(np.ones((1, 5), dtype=np.int64))
    assert state[0, 65:].reshape(5, 11)[:, 1].tolist() == [1] * 5


def test_reward_of_a_clean_win_sums_to_20_and_random_play_loses():
    won, returns, _ = play_scripted("2s3z", "focus-fire", 32, seed=0, variety=False)
    assert won.mean() > 0.9
    assert np.allclose(returns[won], 20.0, atol=1e-4)  # all damage + 10 per kill + 200, scaled by 1020 / 20
    for map_name in MAPS:
        won, _, _ = play_scripted(map_name, "random", 64, seed=1)
        assert won.mean() < 0.05, map_name


def test_play_scripted_reports_each_battles_first_episode():
    """Battles restart as they end (auto-reset), some more than once before the longest first one ends
    (random play on 5m_vs_6m: 18 to 70 steps); the lengths, wins and returns are those of each battle's
    first episode, counted here step by step on battles that do not restart."""
    won, returns, length = play_scripted("5m_vs_6m", "random", 32, seed=0)
    b, rng = SMACBatch("5m_vs_6m", 32, seed=0, auto_reset=False), np.random.default_rng(0)
    b.reset()
    steps, total, first_won, running = np.zeros(32), np.zeros(32), np.zeros(32, bool), np.ones(32, bool)
    while running.any():
        *_, reward, terminated, info = b.step(scripted_actions(b, "random", rng))
        steps += running
        total += reward * running
        first_won |= info["battle_won"] & running
        running &= ~terminated
    assert length.min() * 2 < length.max()
    np.testing.assert_array_equal(length, steps)
    np.testing.assert_array_equal(won, first_won)
    np.testing.assert_allclose(returns, total)


def test_kiting_stalkers_beat_five_zealots_where_standing_ones_lose():
    for policy, low, high in (("kite", 0.9, 1.0), ("focus-fire", 0.0, 0.1)):
        won, _, _ = play_scripted("3s_vs_5z", policy, 32, seed=0)
        assert low <= won.mean() <= high, (policy, won.mean())


def test_a_kiting_stalker_steps_away_from_the_zealots_near_it_while_its_weapon_cools_down():
    """Hand-placed: a stalker at the map's centre, two zealots 1 to its north, one 6 to its east, the
    other two beyond 7. Cooling down, it steps along the sum of the unit vectors away from the three,
    about (−1, −1.9), plus the pull to the centre (0 there): south, where a move along the vectors
    weighted by distance would go west. Ready to fire, it shoots the weakest in range."""
    b = SMACBatch("3s_vs_5z", 1, seed=0)
    b.reset()
    nA = b.n_agents
    b.x[0, 0], b.y[0, 0] = 16.0, 16.0
    b.x[0, nA:], b.y[0, nA:] = [16.3, 15.7, 22.0, 30.0, 2.0], [17.0, 17.0, 16.0, 30.0, 2.0]
    b.x[0, 1:nA], b.y[0, 1:nA] = 2.0, 30.0  # its teammates far away
    b.hp[0, nA:] = [100.0, 100.0, 40.0, 100.0, 100.0]
    b.cooldown[0, 0] = 10.0
    assert scripted_actions(b, "kite", np.random.default_rng(0))[0, 0] == 3  # south
    b.cooldown[0, 0] = 0.0
    assert scripted_actions(b, "kite", np.random.default_rng(0))[0, 0] == N_NO_ATTACK + 2  # the zealot of 40 HP, 6 away


def test_timeout_terminates_without_a_win():
    env = StarCraft2Env("2s3z", seed=0)
    env.reset()
    env._battle.episode_limit = 3
    for _ in range(3):
        reward, terminated, info = env.step([1] * 5)
    assert terminated and not info["battle_won"] and reward == 0.0
    assert env.get_stats() == {
        "battles_won": 0,
        "battles_game": 1,
        "battles_draw": 1,
        "win_rate": 0.0,
        "timeouts": 1,
        "restarts": 0,
    }
    env.reset()
    for _ in range(3):
        env.step([1] * 5)
    assert env.get_stats()["timeouts"] == env.get_stats()["battles_draw"] == env.get_stats()["battles_game"] == 2
    with pytest.raises(InputError, match="reset"):
        env.step([1] * 5)


def test_the_enemy_attack_moves_to_the_allies_spawn_and_takes_the_nearest_ally_within_reach():
    """§8: an enemy with nobody in reach walks at its speed toward the allies' spawn and waits there; it takes the
    nearest living ally within max(5, weapon range + its radius) + the ally's radius (a zealot and a stalker: 5.625
    between centres) or one attacking it from any distance, and keeps a target that attacks it."""
    b = battle("3s_vs_5z", keep_allies=(0, 1), keep_enemies=(0,))
    z = b.n_agents  # the zealot; allies 0 and 1 are stalkers
    place(b, 0, 2.0, 2.0), place(b, 1, 2.0, 30.0), place(b, z, 16.0, 16.0)
    b._game_loop()
    assert b.target[0, z] == -1 and b.attack_point.tolist() == [9.0, 16.0]
    assert (b.x[0, z], b.y[0, z]) == pytest.approx((16.0 - 2.25 / 16, 16.0))  # one loop's walk toward (9, 16)
    place(b, z, 9.0, 16.0)
    b._game_loop()
    assert b.target[0, z] == -1 and (b.x[0, z], b.y[0, z]) == pytest.approx((9.0, 16.0))  # arrived: it waits
    place(b, 0, 9.0 + 5.6, 16.0), place(b, 1, 9.0 - 5.65, 16.0)  # ally 0 within reach, ally 1 just beyond
    b._game_loop()
    assert b.target[0, z] == 0
    place(b, z, 9.0, 16.0), place(b, 0, 9.0 + 5.6, 16.0), place(b, 1, 9.0, 16.0 + 3.0)
    b.target[0, 0] = z  # ally 0 shoots the zealot: kept although ally 1 is nearer
    b._game_loop()
    assert b.target[0, z] == 0
    place(b, z, 9.0, 16.0), place(b, 0, 9.0 + 5.6, 16.0), place(b, 1, 9.0, 16.0 + 3.0)
    b.target[0, 0] = -1  # it stops: out of weapon range and not attacking, it is dropped for the nearest
    b._game_loop()
    assert b.target[0, z] == 1
    b.target[0, z] = -1
    place(b, z, 9.0, 16.0), place(b, 0, 9.0 + 8.0, 16.0), place(b, 1, 9.0, 16.0 + 20.0)
    b.target[0, 1] = z  # nobody within reach, but ally 1 attacks it from 20 away
    b._game_loop()
    assert b.target[0, z] == 1


def play(b: SMACBatch, policy: str, steps: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    trace = [b.reset()]
    for _ in range(steps):
        trace.append(b.step(scripted_actions(b, policy, rng))[:5])
    return trace


@pytest.mark.parametrize("variety", [False, True])
def test_same_seed_same_trajectories_and_battles_independent_of_batch_size(variety):
    """Also across auto-resets (150 steps hold several episodes), where variety settles only the battles that
    restart."""
    a, b = (play(SMACBatch("3s_vs_5z", 4, seed=3, variety=variety), "kite", 150) for _ in range(2))
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    c = play(SMACBatch("3s_vs_5z", 4, seed=4, variety=variety), "kite", 150)
    assert any(not np.array_equal(x[1], y[1]) for x, y in zip(a, c))  # cooldown jitter differs
    # battle 1 of a batch seeded 3 is the single battle seeded 4, whatever runs beside it
    single = play(SMACBatch("3s_vs_5z", 1, seed=4, variety=variety), "kite", 150)
    for x, y in zip(single, a):
        np.testing.assert_array_equal(x[0][0], y[0][1])


def test_auto_reset_keeps_the_terminal_observation():
    b = SMACBatch("5m_vs_6m", 2, seed=0)
    b.reset()
    b.episode_limit = 2
    b.step(np.ones((2, 5), dtype=np.int64))
    obs, state, avail, reward, terminated, info = b.step(np.ones((2, 5), dtype=np.int64))
    assert terminated.all() and info["timeout"].all()
    assert not np.array_equal(info["final_state"], state)  # the last action is recorded in the terminal state
    assert state[:, -60:].sum() == 0 and (b.steps == 0).all()


@pytest.mark.parametrize(
    "map_name, backend", [("2s3z", "sim"), ("3s_vs_5z", "sim")] + [("3s_vs_5z", "sc2")] * HAS_REAL_SMAC
)
def test_pettingzoo_api(map_name, backend):
    parallel_api_test(SMACParallelEnv(map_name, backend), num_cycles=300)
    parallel_seed_test(lambda: SMACParallelEnv(map_name, backend, unavailable="stop"))  # it samples without the mask
    state_test(
        parallel_to_aec(SMACParallelEnv(map_name, backend, unavailable="stop")), SMACParallelEnv(map_name, backend)
    )


def test_pettingzoo_whole_episodes_are_deterministic():
    def episode(seed):
        env = SMACParallelEnv("6h_vs_8z")
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(seed)
        trace = [env.state()]
        while env.agents:
            # the dtypes the observation space declares
            assert all(o["observation"].dtype == np.float32 and o["action_mask"].dtype == np.int8 for o in obs.values())
            actions = {a: int(rng.choice(np.flatnonzero(o["action_mask"]))) for a, o in obs.items()}
            obs, rewards, terms, truncs, infos = env.step(actions)
            trace += [env.state(), np.array(list(rewards.values()))]
        return trace, terms, truncs

    (a, terms, truncs), (b, *_), (c, *_) = episode(5), episode(5), episode(6)
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert len(a) != len(c) or any(not np.array_equal(x, y) for x, y in zip(a, c))
    assert all(terms.values()) != all(truncs.values())


def test_pettingzoo_ends_a_win_by_termination_a_timeout_by_truncation_and_stop_replaces_the_unavailable():
    env = SMACParallelEnv("2s3z", seed=1)  # a battle that focus fire wins (with the variety rules, 3 in 4 do)
    env.reset()
    rng, total = np.random.default_rng(0), 0.0
    while env.agents:
        actions = scripted_actions(env.env._battle, "focus-fire", rng)[0].tolist()
        obs, rewards, terms, truncs, infos = env.step(dict(zip(env.agents, actions)))
        assert len(set(rewards.values())) == 1  # the team's reward, to every agent
        total += rewards["agent_0"]
    assert all(terms.values()) and not any(truncs.values()) and all(i["battle_won"] for i in infos.values())
    assert total == pytest.approx(20.0, abs=1e-4) and env.agents == []
    env.reset()
    env.env._battle.episode_limit = 2
    for _ in range(2):
        _, _, terms, truncs, infos = env.step({a: 1 for a in env.agents})
    assert all(truncs.values()) and not any(terms.values()) and not any(i["battle_won"] for i in infos.values())
    # unavailable="stop": an unavailable action is played as stop (1), or as the no-op (0) for the dead
    stop, twin = SMACParallelEnv("2s3z", seed=3, unavailable="stop"), SMACParallelEnv("2s3z", seed=3)
    obs, _ = stop.reset()
    twin.reset()
    assert not obs["agent_0"]["action_mask"][6]  # no enemy in range at the start
    after_stop = stop.step({a: 6 for a in stop.agents})[0]
    after_twin = twin.step({a: 1 for a in twin.agents})[0]
    assert all(np.array_equal(after_stop[a]["observation"], after_twin[a]["observation"]) for a in after_stop)
    np.testing.assert_array_equal(stop.state(), twin.state())
    stop.env._battle.y[0, 0] = 23.0  # agent 0 at the corridor's northern wall: north unavailable, stop available
    assert stop.env.get_avail_actions()[0][1:6] == [1, 0, 1, 1, 1]
    stop.step({a: 2 if a == "agent_0" else 1 for a in stop.agents})
    assert (stop.env._battle.last_action[0, :5] == 1).all() and stop.env._battle.y[0, 0] == 23.0
    stop.env._battle.alive[0, 0] = False  # agent 0 dies: only the no-op is available to it
    stop.env._battle.hp[0, 0] = 0.0
    stop.step({a: 1 for a in stop.agents})
    assert stop.env._battle.last_action[0, 0] == 0 and (stop.env._battle.last_action[0, 1:] == 1).all()


def test_observations_and_states_stay_in_their_spaces():
    """Whole episodes of every map, agents and enemies fighting: every obs and state inside its Box."""
    for map_name in MAPS:
        env = SMACParallelEnv(map_name)
        b = SMACBatch(map_name, 16, seed=0)
        obs, state, _ = b.reset()
        rng = np.random.default_rng(0)
        for _ in range(60):
            obs, state, *_ = b.step(scripted_actions(b, "kite", rng))
            assert env.observation_space("agent_0")["observation"].contains(obs[0, 0])
            assert obs.min() >= -1 and obs.max() <= 1 and state.min() >= -1 and state.max() <= 2, map_name


def test_bad_input_is_one_clear_line():
    with pytest.raises(InputError, match="unknown SMAC map '3m'; known maps: 2s3z, 3s_vs_5z, 5m_vs_6m, 6h_vs_8z"):
        SMACBatch("3m", 4)
    for n in (0, -1):
        with pytest.raises(InputError, match=f"n_battles={n}"):
            SMACBatch("2s3z", n)
    with pytest.raises(InputError, match=r"seed=-1 is not accepted; accepted: an integer in \[0, 2\*\*32\)"):
        SMACBatch("2s3z", 4, seed=-1)
    with pytest.raises(InputError, match=r"variety='yes' is not accepted; accepted: True, False or None"):
        SMACBatch("2s3z", 4, variety="yes")
    b = SMACBatch("2s3z", 2)
    b.reset()
    with pytest.raises(InputError, match=r"shape \(5,\).*accepted: integers of shape \(2, 5\)"):
        b.step(np.ones(5, dtype=np.int64))
    with pytest.raises(InputError, match="action 11 of agent 0 .* out of range; accepted: 0..10"):
        b.step(np.full((2, 5), 11))
    with pytest.raises(
        InputError, match=r"action 0 of agent 0 \(battle 0\) is unavailable; available: \[1, 2, 3, 4, 5\]"
    ):
        b.step(np.zeros((2, 5), dtype=np.int64))
    with pytest.raises(InputError, match="unknown SMAC back end 'pysc2'; accepted: sim, sc2"):
        make_env("2s3z", "pysc2")
    with pytest.raises(InputError, match="unknown scripted policy"):
        scripted_actions(b, "rush", np.random.default_rng(0))
    assert set(SCRIPTED_POLICIES) >= {"random", "kite"}
    env = SMACParallelEnv("2s3z")
    env.reset(seed=0)
    with pytest.raises(InputError, match="action 0 of agent 0 .* is unavailable"):
        env.step({agent: 0 for agent in env.agents})
    with pytest.raises(InputError, match="unavailable='ignore' is not accepted; accepted: error, stop"):
        SMACParallelEnv("2s3z", unavailable="ignore")


@pytest.mark.skipif(HAS_REAL_SMAC, reason="the real SMAC is installed")
def test_missing_real_smac_says_how_to_install():
    with pytest.raises(InputError, match="pip install git\\+https://github.com/oxwhirl/smac.git"):
        make_env("2s3z", "sc2")


def test_replays_need_starcraft_ii():
    """SMAC's save_replay exists for API compatibility; the built-in simulator has no replays (it renders frames:
    tests/test_smac_render.py)."""
    with pytest.raises(NotImplementedError, match=r"replays need StarCraft II: use backend='sc2'"):
        StarCraft2Env("2s3z").save_replay()


def test_the_counter_based_generator_is_splitmix64():
    """Every random draw of the simulator comes from SplitMix64 (Steele et al. 2014): its published first
    outputs for seed 0 (the state advanced by the golden gamma each draw)."""
    from envs.smac import _splitmix64

    gamma = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        counters = np.array([0, gamma, gamma * np.uint64(2)], dtype=np.uint64)
    assert [int(v) for v in _splitmix64(counters)] == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]


# ---------------------------------------------------------------------------------------
# The variety rules (SMACBatch(variety=True)), each on a hand-built case
# ---------------------------------------------------------------------------------------
def loops_until_damaged(b: SMACBatch, unit: int, loops: int) -> list[int]:
    """The game loops (0-based) in which unit's health or shield drops."""
    hit = []
    for loop in range(loops):
        before = b.hp[0, unit] + b.shield[0, unit]
        b._game_loop()
        if b.hp[0, unit] + b.shield[0, unit] < before:
            hit.append(loop)
    return hit


def test_a_stalker_missile_leaves_after_the_damage_point_and_lands_after_its_flight():
    """Damage point 0.167 s = 2.67 loops: the shot leaves in loop 3; 5 apart at 1.25 a loop, it lands 4 loops
    later, in loop 7 (13 to the zealot's shields). The stalker holds meanwhile."""
    b = battle("3s_vs_5z", variety=True)
    place(b, 0, 10, 16), place(b, 3, 15, 16)
    b.u_speed[3] = 0.0  # the zealot stands
    b._issue_orders(np.array([[6, 0, 0]]))
    assert loops_until_damaged(b, 3, 12) == [7]
    assert b.shield[0, 3] == 50 - 13 and (b.x[0, 0], b.y[0, 0]) == (10, 16)


def test_an_attack_under_way_continues_within_range_plus_slop():
    """The stalker starts its attack on a zealot at the edge of its range (6); the zealot then steps 0.5
    further (inside range + slop 1: the missile still leaves) or 1.5 further (the attack is broken off)."""
    for step, hit in ((0.5, [9]), (1.5, [])):  # fired in loop 3, 7.6 apart: 6.1 loops of flight
        b = battle("3s_vs_5z", variety=True)
        place(b, 0, 10, 16), place(b, 3, 10 + 6 + 0.625 + 0.5, 16)
        b.u_speed[3] = 0.0
        b._issue_orders(np.array([[6, 0, 0]]))
        b._game_loop()
        b.x[0, 3] += step
        assert loops_until_damaged(b, 3, 12) == hit, step


def test_a_move_order_during_the_damage_point_cancels_the_shot_and_readies_the_weapon():
    b = battle("3s_vs_5z", variety=True)
    place(b, 0, 10, 16), place(b, 3, 15, 16)
    b.u_speed[3] = 0.0
    b._issue_orders(np.array([[6, 0, 0]]))
    b._game_loop(), b._game_loop()  # still winding up
    assert b.swinging[0, 0] and b.cooldown[0, 0] > 20
    b._issue_orders(np.array([[3, 0, 0]]))  # south
    assert not b.swinging[0, 0] and b.cooldown[0, 0] == 0
    assert loops_until_damaged(b, 3, 12) == [] and b.y[0, 0] < 16
    # without variety the same shot lands in the loop it is fired
    b = battle("3s_vs_5z", variety=False)
    place(b, 0, 10, 16), place(b, 3, 15, 16)
    b._issue_orders(np.array([[6, 0, 0]]))
    assert loops_until_damaged(b, 3, 3) == [0]


def test_a_zealots_second_blade_lands_five_loops_after_the_first():
    """Damage point 0: the first hit in loop 0 (8 to the shields), the second 0.28 s = 4.48 loops later, in
    loop 5; a marine's shot (damage point 0.05 s = 0.8 loops) lands in loop 1."""
    b = battle("3s_vs_5z", variety=True)
    place(b, 0, 10, 16), place(b, 3, 11.15, 16)
    b.u_speed[0] = 0.0
    b._issue_orders(np.array([[1, 0, 0]]))
    assert loops_until_damaged(b, 0, 8) == [0, 5] and b.shield[0, 0] == 80 - 16
    b = battle("3s_vs_5z", variety=True)  # a zealot killed between its blades never lands the second
    place(b, 0, 10, 16), place(b, 3, 11.15, 16)
    b.u_speed[0] = 0.0
    b._issue_orders(np.array([[1, 0, 0]]))
    b._game_loop()
    b.hp[0, 3], b.shield[0, 3] = 0.0, 0.0  # dies in the next loop
    assert loops_until_damaged(b, 0, 8) == []
    b = battle("5m_vs_6m", variety=True)
    place(b, 0, 10, 16), place(b, 5, 14, 16)
    b.cooldown[0, 5] = 100.0
    b._issue_orders(np.array([[6, 0, 0, 0, 0]]))
    assert loops_until_damaged(b, 5, 4) == [1]


def test_an_ai_unit_holds_through_its_backswing_an_agent_order_ends_it():
    """An enemy marine fires in loop 1, then holds 0.75 s = 12 loops (through loop 12) although its target has
    left; an ally marine ordered to move right after its shot walks at once."""
    b = battle("5m_vs_6m", variety=True)
    place(b, 0, 10, 16), place(b, 5, 14, 16)
    b.cooldown[0, 0] = 100.0
    b._issue_orders(np.array([[1, 0, 0, 0, 0]]))
    b._game_loop(), b._game_loop()
    assert b.hp[0, 0] == 45 - 6
    place(b, 0, 2, 16)  # far out of its range
    for _ in range(11):  # loops 2..12
        b._game_loop()
    assert b.x[0, 5] == 14
    b._game_loop()
    assert b.x[0, 5] < 14
    b = battle("5m_vs_6m", variety=True)
    place(b, 0, 10, 16), place(b, 5, 14, 16)
    b.cooldown[0, 5] = 100.0
    b._issue_orders(np.array([[6, 0, 0, 0, 0]]))
    b._game_loop(), b._game_loop()
    assert b.backswing[0, 0] > 0
    b._issue_orders(np.array([[5, 0, 0, 0, 0]]))  # west
    b._game_loop()
    assert b.x[0, 0] < 10


def test_two_overlapping_units_share_the_push_in_random_per_pair_shares():
    """Two stopped marines 0.3 apart (separation 0.375 each) end exactly 0.75 apart, each moving away from the
    other; the share each takes of the 0.45 is drawn per loop and battle: within 1/2 ± PUSH_SHARE_SPREAD (0.1),
    spread across that range, even on average."""
    shares = []
    for seed in range(64):
        b = battle("5m_vs_6m", keep_allies=(0, 1), keep_enemies=(), variety=True, seed=seed)
        place(b, 0, 10, 16), place(b, 1, 10.3, 16)
        b._issue_orders(np.array([[1, 1, 0, 0, 0]]))
        b._game_loop()
        left, right = 10 - b.x[0, 0], b.x[0, 1] - 10.3
        assert left >= 0 and right >= 0
        np.testing.assert_allclose(left + right, 0.45, atol=1e-5)
        np.testing.assert_allclose(b.y[0, :2], 16, atol=1e-6)
        shares.append(left / 0.45)
    assert 0.4 < min(shares) < 0.45 and 0.55 < max(shares) < 0.6
    assert 0.47 <= np.mean(shares) <= 0.53


def test_of_two_marines_that_would_kill_each_other_in_one_loop_the_one_updated_first_fires():
    survivors = []
    for seed in range(32):
        b = battle("5m_vs_6m", variety=True, seed=seed)
        place(b, 0, 10, 16), place(b, 5, 14, 16)
        b.hp[0, [0, 5]] = 1.0
        b._issue_orders(np.array([[6, 0, 0, 0, 0]]))
        b._game_loop(), b._game_loop()
        assert b.alive[0, [0, 5]].sum() == 1
        survivors.append(bool(b.alive[0, 0]))
    assert 0 < sum(survivors) < 32
    b = battle("5m_vs_6m", variety=False)  # simultaneous: both die
    place(b, 0, 10, 16), place(b, 5, 14, 16)
    b.hp[0, [0, 5]] = 1.0
    b._issue_orders(np.array([[6, 0, 0, 0, 0]]))
    b._game_loop()
    assert not b.alive[0, [0, 5]].any()


def test_the_first_observation_comes_two_loops_after_the_armies_appear():
    """5m_vs_6m's marines spawn packed but not overlapping (inner radius = separation radius): after
    RESET_LOOPS = 2 loops the allies stand on their spawn and every enemy has walked 2 x 2.25/16 toward them."""
    b = SMACBatch("5m_vs_6m", 4, seed=0, variety=True)
    b.reset()
    assert (b.loop == 2).all()
    spawn = b.spawn[None].repeat(4, 0)
    walked = np.linalg.norm(b.pos - spawn, axis=-1)
    np.testing.assert_allclose(walked[:, 5:], 2 * 2.25 / 16, atol=1e-3)  # converging paths just touch
    assert sorted(map(tuple, b.pos[0, :5].tolist())) == sorted(map(tuple, b.spawn[:5].tolist()))


def test_units_pressed_against_the_map_edge_stay_on_the_map():
    """Four zealots on top of a stalker in a corner of 3s_vs_5z (all 32 x 32 pathable): their pushes add up to
    more than 2 map units, and every centre still stays on the map."""
    for corner, inward in ((0.05, 1), (31.95, -1)):
        b = battle("3s_vs_5z", keep_allies=(0,), keep_enemies=(0, 1, 2, 3), variety=True)
        place(b, 0, corner, corner)
        for k, (dx, dy) in enumerate(((0.05, 0.05), (0.01, 0.15), (0.15, 0.01), (0.1, 0.1))):
            place(b, 3 + k, corner + inward * dx, corner + inward * dy)
        for _ in range(16):
            b._issue_orders(np.array([[1, 0, 0]]))
            b._game_loop()
            assert ((b.pos[b.alive] >= 0) & (b.pos[b.alive] < 32)).all(), corner


def test_packed_spawn_first_unit_on_the_point_the_next_on_the_nearest_touching_spot():
    stalkers = packed_spawn((9, 16), ("stalker",) * 3, 1.5705)
    np.testing.assert_array_equal(stalkers, [[9, 16], [9, 15], [8, 16]])  # inner radius 0.5: 1 apart
    zealots = packed_spawn((23, 16), ("zealot",) * 5, 4.7121)
    np.testing.assert_array_equal(zealots[:2], [[23, 16], [23, 16.75]])  # 0.375 + 0.375
    # the enemy's point faces the other way: its army is the allies' turned half a turn
    np.testing.assert_array_equal(packed_spawn((23, 16), ("stalker",) * 3, 4.7121), [[23, 16], [23, 17], [24, 16]])
    gaps = np.linalg.norm(zealots[:, None] - zealots[None], axis=-1) + np.eye(5)
    assert gaps.min() >= 2 * UNITS["zealot"].inner_radius


@pytest.mark.parametrize("map_name", list(MAPS))
def test_with_variety_battles_part_within_three_steps_and_agents_are_numbered_by_type_and_position(map_name):
    b = SMACBatch(map_name, 32, seed=11, auto_reset=False, variety=True)
    obs, *_ = b.reset()
    nA, rng = b.n_agents, np.random.default_rng(0)
    key = b.type_id[:nA] * 1e4 + b.x[:, :nA] * 10  # SMAC sorts the agents by (unit type, x, y)
    assert (np.diff(key, axis=-1) >= 0).all()
    parted_at = None
    for step in range(4):
        if len(np.unique(obs.reshape(32, -1).round(4), axis=0)) > 1:
            parted_at = step
            break
        obs, *_ = b.step(scripted_actions(b, "attack-nearest", rng))
    assert parted_at is not None, f"{map_name}: all 32 battles' observations agree for 4 steps"
