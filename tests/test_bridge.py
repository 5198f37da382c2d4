"""Bridge: the rules of docs/bridge.md, the datasets, the script and its CLI."""

import os
import tempfile

import numpy as np
import pytest
import torch
from pettingzoo.test import parallel_api_test, parallel_seed_test, state_test
from pettingzoo.utils.conversions import parallel_to_aec

import inspo_bridge
from conftest import (
    alberdice_path,
    assert_hyperparameters,
    assert_one_line_error,
    assert_summary_file,
    assert_tracked,
    global_rngs_untouched,
    record_calls,
    run_script,
    steps,
    tensorboard_scalars,
)
from envs import InputError
from envs.alberdice import load_buffer
from envs.bridge import (
    OPTIMUM,
    TRAIN_HORIZON,
    BridgeCore,
    BridgeEnv,
    collect,
    format_card,
    load_or_make,
    resolve_moves,
    transitions,
)

STAY, UP, DOWN, RIGHT, LEFT = range(5)


def step_once(pos, actions, done=(False, False)):
    return resolve_moves(np.array([pos]), np.array([done]), np.array([actions]))[0].tolist()


# --- rules (§3-§5) ---------------------------------------------------------------------
def test_collision_rules():
    assert step_once([[1, 2], [1, 3]], [RIGHT, LEFT]) == [[1, 2], [1, 3]]  # head-on swap: both blocked
    assert step_once([[1, 2], [1, 3]], [RIGHT, RIGHT]) == [[1, 3], [1, 4]]  # following a leaving agent
    assert step_once([[1, 2], [1, 3]], [RIGHT, STAY]) == [[1, 2], [1, 3]]  # occupant stays: blocked
    assert step_once([[0, 4], [2, 4]], [DOWN, UP]) == [[1, 4], [2, 4]]  # contested empty cell: agent 0 wins
    assert step_once([[1, 2], [1, 3]], [UP, DOWN]) == [[1, 2], [1, 3]]  # walls
    assert step_once([[0, 0], [1, 5]], [UP, RIGHT]) == [[0, 0], [1, 5]]  # grid edges
    assert step_once([[1, 5], [2, 5]], [DOWN, STAY]) == [[2, 5], [2, 5]]  # own goal: always enters
    assert step_once([[2, 5], [1, 5]], [STAY, DOWN], done=(True, False)) == [[2, 5], [2, 5]]  # done agents are ghosts


def test_reward_termination_and_horizon():
    env = BridgeCore(2, horizon=20)
    state = env.reset()
    assert state[0].tolist() == [1, 2, 2, 5, 1, 3, 0, 0]
    _, reward, terminated = env.step(np.array([[RIGHT, RIGHT], [STAY, STAY]]))
    expected = -0.1 * (np.hypot(1, 2) + np.hypot(1, 4)) / 2  # after (right,right): (1,3) and (1,4)
    assert reward[0] == pytest.approx(expected, abs=1e-6) and not terminated.any()
    for _ in range(18):
        _, reward, terminated = env.step(np.zeros((2, 2), np.int64))
    assert not terminated.any()
    _, reward, terminated = env.step(np.zeros((2, 2), np.int64))  # step 20: time limit, reward zeroed
    assert terminated.all() and (reward == 0).all()
    with pytest.raises(InputError, match="0..4"):
        env.step(np.array([[5, 0], [0, 0]]))
    with pytest.raises(InputError, match="shape"):
        env.step(np.zeros((3, 2), np.int64))


def test_handcrafted_trajectories_have_the_six_returns_of_section_7():
    data = collect("optimal", 120, np.random.default_rng(0))
    returns = data["reward"][:, :, 0].sum(1)
    table = {
        (RIGHT, UP): -1.235453,
        (RIGHT, DOWN): -1.259065,
        (RIGHT, RIGHT): -1.290404,
        (LEFT, DOWN): -1.235453,
        (LEFT, UP): -1.259065,
        (LEFT, LEFT): -1.290404,
    }
    seen = set()
    for e in range(len(returns)):
        mode = data["actions"][e, 0, 0, 0]
        yielder = 1 if mode == RIGHT else 0
        key = (mode, data["actions"][e, 1, yielder, 0])
        assert returns[e] == pytest.approx(table[key], abs=1e-5)
        assert (data["filled"][e, :, 0].sum() - 1) == 8  # time-optimal: 8 steps
        seen.add(key)
    assert seen == set(table) and max(returns) == pytest.approx(OPTIMUM, abs=1e-6)


def test_replay_every_released_transition():
    """docs/bridge.md: an exact implementation reproduces all 32,885 released transitions."""
    total = mismatches = 0
    for name in ("buffer_optimal", "buffer_mix"):
        arrays = load_buffer(alberdice_path("bridge_from_start", name), n_agents=2, n_actions=5)
        length = arrays["filled"][..., 0].sum(1) - 1
        env = BridgeCore(len(length), horizon=50)
        state = env.reset()
        assert np.array_equal(state, arrays["state"][:, 0])
        for t in range(50):
            live = t < length
            actions = np.where(live[:, None], arrays["actions"][:, t, :, 0], 0)
            state, reward, terminated = env.step(actions)
            bad = ~np.isclose(state, arrays["state"][:, t + 1]).all(-1)
            bad |= ~np.isclose(reward, arrays["reward"][:, t, 0], atol=1e-6)
            bad |= terminated != arrays["terminated"][:, t, 0].astype(bool)
            total += live.sum()
            mismatches += (bad & live).sum()
    assert total == 32885 and mismatches == 0


def test_pettingzoo_api_and_determinism():
    parallel_api_test(BridgeEnv(), num_cycles=60)
    parallel_seed_test(BridgeEnv)
    state_test(parallel_to_aec(BridgeEnv()), BridgeEnv())
    trajectories = []
    for _ in range(2):  # our own test: whole episodes, not only the first step
        env, rng, trace = BridgeEnv(), np.random.default_rng(5), []
        obs, _ = env.reset(seed=5)
        while env.agents:
            actions = {a: int(rng.integers(5)) for a in env.agents}
            obs, rewards, terms, truncs, _ = env.step(actions)
            trace.append((env.state().tolist(), rewards, terms, truncs))
        trajectories.append(trace)
    assert trajectories[0] == trajectories[1] and len(trajectories[0]) == 20


# --- datasets --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


def test_generated_optimal_matches_the_released_statistics(cache, capsys):
    arrays, card = load_or_make("optimal", 0, cache)
    assert card["episodes"] == 500 and card["transitions"] == 4000
    assert card["how"] == "generated: 500 episodes of the handcrafted optimal policy (docs/bridge.md §7)"
    assert card["return_mean"] == pytest.approx(-1.262, abs=0.003)  # §9: −1.2620 ± 0.0227 over 500 episodes
    first = arrays["actions"][:, 0, :, 0].tolist()
    assert set(map(tuple, first)) == {(LEFT, LEFT), (RIGHT, RIGHT)}  # correlated modes, never (left,right)
    assert 0.4 < np.mean([a == [RIGHT, RIGHT] for a in first]) < 0.6
    capsys.readouterr()
    again, card_again = load_or_make("optimal", 0, cache)  # from the cache, as it is: no rebuild
    assert "corrupt" not in capsys.readouterr().out
    assert card_again == card and all(np.array_equal(arrays[k], again[k]) for k in arrays)
    assert os.path.isfile(os.path.join(cache, "bridge_optimal_seed0", "card.json"))


def test_generated_mixed_is_random_then_optimal(cache):
    arrays, card = load_or_make("mixed", 0, cache)
    optimal, _ = load_or_make("optimal", 0, cache)
    returns = arrays["reward"][:, :, 0].sum(1)
    assert card["episodes"] == 1000
    assert card["how"] == "generated: 500 uniform-random episodes (docs/bridge.md §8), then 500 optimal (§7)"
    assert returns[:500].mean() == pytest.approx(-17.667, abs=0.6)  # §8: std 3.894 over 500 episodes
    assert returns[500:].mean() == pytest.approx(-1.262, abs=0.003)
    actions = arrays["actions"][:500, :50, :, 0][arrays["filled"][:500, :50, 0] == 1]
    assert np.allclose(np.bincount(actions.ravel(), minlength=5) / actions.size, 0.2, atol=0.01)
    assert arrays["state"].shape == (1000, 51, 8)
    assert all(np.array_equal(arrays[k][500:], optimal[k]) for k in arrays)  # the optimal half, as released
    # training sees each episode's first TRAIN_HORIZON = 20 steps (§5: collected with 50, evaluated with 20)
    lengths = arrays["filled"][:, :, 0].sum(1) - 1
    for horizon, cut in ((None, TRAIN_HORIZON), (5, 5)):
        steps = transitions(arrays) if horizon is None else transitions(arrays, horizon=horizon)
        assert len(steps["reward"]) == np.minimum(lengths, cut).sum() < lengths.sum()


def test_corrupt_cache_is_rebuilt(cache, capsys):
    arrays, card = load_or_make("optimal", 0, cache)
    with open(os.path.join(cache, "bridge_optimal_seed0", "reward.npy"), "r+b") as f:
        f.truncate(100)
    rebuilt, card2 = load_or_make("optimal", 0, cache)
    assert "corrupt" in capsys.readouterr().out
    assert card2["sha256"] == card["sha256"] and np.array_equal(rebuilt["reward"], arrays["reward"])
    # readable, but not what was made
    np.save(os.path.join(cache, "bridge_optimal_seed0", "reward.npy"), arrays["reward"] + 1.0)
    rebuilt, _ = load_or_make("optimal", 0, cache)
    assert "checksum mismatch" in capsys.readouterr().out and np.array_equal(rebuilt["reward"], arrays["reward"])


def test_a_failed_write_leaves_no_half_written_cache(tmp_path, monkeypatch):
    real_save, saved = np.save, []

    def save_then_fail(path, array):
        if saved:
            raise OSError(28, "No space left on device")
        saved.append(path)
        real_save(path, array)

    monkeypatch.setattr(np, "save", save_then_fail)
    with pytest.raises(OSError, match="No space left"):
        load_or_make("optimal", 0, str(tmp_path))
    assert len(saved) == 1 and os.listdir(tmp_path) == []


# --- the script ------------------------------------------------------------------------
def test_a_dataset_is_built_inside_the_cache_directory(tmp_path, monkeypatch):
    """The temporary directory sits in the cache directory, so the final rename stays on one
    filesystem (atomic): with the system's temporary directory gone, generation still works."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no_such_dir"))
    load_or_make("optimal", 0, str(tmp_path / "cache"))
    assert os.listdir(tmp_path / "cache") == ["bridge_optimal_seed0"]


def bridge_args(tmp_path, cache, **kwargs):
    base = dict(
        dataset="optimal",
        cache_dir=cache,
        runs_dir=str(tmp_path),
        progress=False,
        num_updates=300,
        bc_updates=300,
        eval_interval=100,
        eval_episodes=32,
        final_eval_episodes=64,
    )
    return inspo_bridge.Args(**{**base, **kwargs})


def test_tiny_run_evaluates_on_schedule_and_greedily(tmp_path, cache, fake_wandb, monkeypatch, capsys):
    """History and TensorBoard scalars at every --eval-interval; the greedy figures are the argmax
    policies' (Bridge is deterministic, so they can be recomputed from the checkpoint); auto-α moves α;
    the best return is the best evaluation; --track starts one wandb run; the global RNGs are left alone.
    Evaluations: --eval-episodes each --eval-interval, --final-eval-episodes for BC and the end, both
    modes at the end; their numbers are what the history, TensorBoard and the summary report."""
    evaluations = record_calls(monkeypatch, inspo_bridge, "evaluate")  # (policies, episodes, greedy, generator, device)
    with global_rngs_untouched():  # every draw from the run's own generators
        summary = inspo_bridge.main(
            bridge_args(
                tmp_path,
                cache,
                num_updates=6,
                bc_updates=6,
                eval_interval=3,
                eval_episodes=4,
                final_eval_episodes=8,
                checkpoint_interval=3,
                autotune_alpha=True,
                alpha_lr=0.1,
                track=True,
                wandb_project_name="p",
                wandb_entity="e",
                progress=True,
            )
        )
    made = list(evaluations)  # the run's own (the greedy checks below evaluate again)
    # the dataset it trained on, then the result a user reads; the bar on stderr
    printed, progress = capsys.readouterr()
    run_dir = os.path.join(tmp_path, os.listdir(tmp_path)[0])
    assert f"{os.path.basename(run_dir)[:40]}: 100%|" in progress and "6/6 [" in progress
    printed = printed.splitlines()
    assert printed[0] == format_card(summary["card"]) and printed[-1] == f"summary: {run_dir}/summary.json"
    assert printed[-2] == (
        f"bridge optimal ({summary['source']}): return {summary['final_return']:.4f} (stochastic, 8 episodes; "
        f"greedy {summary['final_return_greedy']:.4f}, stochastic {summary['final_return_stochastic']:.4f}; "
        f"best {summary['best_return']:.4f}), BC {summary['bc_return']:.4f}, optimum {summary['optimum']}, "
        f"{summary['wall_time_s']:.1f} s"
    )
    assert_tracked(fake_wandb, os.path.join(tmp_path, os.listdir(tmp_path)[0]), "p", "e")
    assert [h[0] for h in summary["history"]] == [3, 6] and summary["num_updates"] == 6
    # none renamed or lost
    assert set(summary) == {
        "dataset",
        "source",
        "card",
        "eval_greedy",
        "final_return",
        "final_return_greedy",
        "final_return_stochastic",
        "best_return",
        "bc_return",
        "bc_return_greedy",
        "bc_return_stochastic",
        "optimum",
        "history",
        "wall_time_s",
        "num_updates",
        "args",
    }
    assert summary["best_return"] == max(h[1] for h in summary["history"])
    state = torch.load(os.path.join(tmp_path, os.listdir(tmp_path)[0], "checkpoint.pt"), weights_only=False)
    assert state["alpha"] != 0.1  # α = exp(log α) after 6 Adam steps of lr 0.1
    for key, greedy in (("policies", "final_return_greedy"), ("behaviours", "bc_return_greedy")):
        models = [inspo_bridge.Policy(8, 5, 256) for _ in state[key]]
        for model, weights in zip(models, state[key]):
            model.load_state_dict(weights)
        assert inspo_bridge.evaluate(models, 8, True, None, "cpu") == summary[greedy], key
    assert summary["final_return"] == summary["final_return_stochastic"]  # Bridge reports stochastic (AlberDICE)
    scalars = tensorboard_scalars(os.path.join(tmp_path, os.listdir(tmp_path)[0]))
    for tag in ("eval/return", "charts/alpha", "charts/beta", "charts/kl", "losses/critic_loss", "losses/actor_loss"):
        assert steps(scalars[tag]) == [3, 6], tag
    assert steps(scalars["losses/bc_loss"]) == [0]
    assert scalars["eval/final_return"] == [(6, pytest.approx(summary["final_return"]))]
    # the arguments' table (CleanRL's text card)
    assert_hyperparameters(os.path.join(tmp_path, os.listdir(tmp_path)[0]), summary)
    assert_summary_file(os.path.join(tmp_path, os.listdir(tmp_path)[0]), summary)
    assert [call[1:3] for call, _ in made] == [
        (8, False),
        (4, False),
        (4, False),
        (8, True),
        (8, False),
        (8, True),
        (8, False),
    ]
    results = [result for _, result in made]
    assert [h[1] for h in summary["history"]] == results[1:3] == pytest.approx([v for _, v in scalars["eval/return"]])
    assert (
        summary["bc_return"] == results[0]
        and [
            summary[k]
            for k in ("final_return_greedy", "final_return_stochastic", "bc_return_greedy", "bc_return_stochastic")
        ]
        == results[3:]
    )
    args = inspo_bridge.Args()
    assert [v for _, v in scalars["charts/beta"]] == pytest.approx([args.beta_0 * args.beta_decay**k for k in (3, 6)])
    assert 0 < summary["history"][0][2] < summary["history"][1][2] <= summary["wall_time_s"] < 600


@pytest.mark.slow
def test_short_training_beats_uniform_random(tmp_path, cache):
    summary = inspo_bridge.main(bridge_args(tmp_path, cache))
    # seeds 0-4: stochastic -1.29 to -1.32, greedy -1.26 to -1.29 (benchmarks/results/outcome_spread.md);
    # BC alone scores about -1.95 stochastic (bridge.md), uniform random play -7.10 at horizon 20 (§5)
    assert summary["final_return_stochastic"] > -1.40
    assert summary["final_return_greedy"] > -1.35
    assert {"final_return", "best_return", "bc_return", "wall_time_s", "num_updates", "args"} <= set(summary)


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, cache):
    straight = inspo_bridge.main(
        bridge_args(tmp_path / "a", cache, num_updates=40, checkpoint_interval=20, eval_interval=20, bc_updates=20)
    )
    first = inspo_bridge.main(
        bridge_args(tmp_path / "b", cache, num_updates=20, checkpoint_interval=20, eval_interval=20, bc_updates=20)
    )
    run_dir = os.path.join(str(tmp_path / "b"), os.listdir(tmp_path / "b")[0])
    state = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)
    state["elapsed_s"] += 1e6  # the clock goes on from the checkpoint's: the first sitting counts (wall_time_s)
    torch.save(state, os.path.join(run_dir, "checkpoint.pt"))
    resumed = inspo_bridge.main(
        bridge_args(
            tmp_path / "b",
            cache,
            num_updates=40,
            checkpoint_interval=20,
            eval_interval=20,
            bc_updates=20,
            resume=os.path.join(run_dir, "checkpoint.pt"),
        )
    )
    a = torch.load(os.path.join(tmp_path / "a", os.listdir(tmp_path / "a")[0], "checkpoint.pt"), weights_only=False)
    b = torch.load(os.path.join(run_dir, "checkpoint.pt"), weights_only=False)
    for pa, pb in zip(a["policies"], b["policies"]):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert [h[1] for h in resumed["history"]] == [h[1] for h in straight["history"]]
    assert resumed["final_return_stochastic"] == straight["final_return_stochastic"] and first["num_updates"] == 20
    assert min(h[2] for h in resumed["history"][len(first["history"]) :]) > 1e6 and resumed["wall_time_s"] > 1e6


# --- bad input -------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_resume_from_a_different_configuration(tmp_path, cache):
    inspo_bridge.main(bridge_args(tmp_path, cache, num_updates=5, bc_updates=5, checkpoint_interval=5))
    checkpoint = os.path.join(str(tmp_path), os.listdir(tmp_path)[0], "checkpoint.pt")
    before = os.path.getmtime(checkpoint)
    result = run_script(
        "inspo_bridge.py",
        "--dataset",
        "optimal",
        "--cache-dir",
        cache,
        "--bc-updates",
        "5",
        "--alpha",
        "0.5",
        "--resume",
        checkpoint,
        "--runs-dir",
        str(tmp_path),
    )
    assert_one_line_error(result, "--alpha 0.1", "0.5")
    assert os.path.getmtime(checkpoint) == before  # nothing already written is lost
    summary = os.path.join(os.path.dirname(checkpoint), "summary.json")
    written = open(summary).read()
    with pytest.raises(InputError, match="adds nothing"):  # a resume that would change nothing says so
        inspo_bridge.main(
            bridge_args(tmp_path, cache, num_updates=5, bc_updates=5, checkpoint_interval=5, resume=checkpoint)
        )
    assert open(summary).read() == written and os.path.getmtime(checkpoint) == before
    state = torch.load(checkpoint, weights_only=False)  # written on a GPU: its generators' states fit only a GPU
    assert set(state) == set(inspo_bridge.CHECKPOINT_KEYS)
    state["device"] = "cuda"
    torch.save(state, checkpoint)
    before = os.path.getmtime(checkpoint)
    with pytest.raises(
        InputError, match="was written on cuda, this run is on cpu; accepted: the checkpoint's device \\(--cuda\\)"
    ):
        inspo_bridge.main(
            bridge_args(tmp_path, cache, num_updates=10, bc_updates=5, checkpoint_interval=5, resume=checkpoint)
        )
    assert os.path.getmtime(checkpoint) == before
    del state["elapsed_s"]  # a checkpoint that lacks a key is one error line, not a KeyError from the loop
    state["device"] = "cpu"
    torch.save(state, checkpoint)
    before = os.path.getmtime(checkpoint)
    result = run_script(
        "inspo_bridge.py",
        "--dataset",
        "optimal",
        "--cache-dir",
        cache,
        "--bc-updates",
        "5",
        "--num-updates",
        "10",
        "--checkpoint-interval",
        "5",
        "--resume",
        checkpoint,
        "--runs-dir",
        str(tmp_path),
    )
    assert_one_line_error(result, "lacks elapsed_s", "accepted: a checkpoint.pt this script wrote")
    assert os.path.getmtime(checkpoint) == before


def test_the_pettingzoo_episode_terminates_at_the_time_limit():
    """§5: at the episode limit every agent becomes done, so the episode terminates (it is never truncated)."""
    env = BridgeEnv()
    env.reset()
    for t in range(env.core.horizon):
        _, rewards, terms, truncs, _ = env.step({a: 0 for a in env.agents})  # both stay put: never at a goal
        assert all(terms.values()) == (t == env.core.horizon - 1) and not any(truncs.values()), t
    assert env.agents == [] and rewards == {"agent_0": 0.0, "agent_1": 0.0}  # the step that ends it pays 0 (§4)
