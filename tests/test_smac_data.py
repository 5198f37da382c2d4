"""SMAC datasets: CFCQL's h5 layout, reproducibility, mixed's indices, the cache, the cards, the
shipped behaviour policies, the QMIX trainer (learns, resumes exactly) and the bad inputs."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np
import pytest
import torch
import tyro

from conftest import ROOT, assert_cli_error, assert_one_line_error, global_rngs_untouched, main_block
from envs import InputError, smac_data
from envs.smac import MAPS, SMACBatch
from envs.smac_data import (
    DATASETS,
    H5_KEYS,
    POLICY_DIR,
    episode_stats,
    load_agent,
    load_h5,
    load_or_make,
    make_dataset,
    map_sizes,
    rollout,
    summarise,
)
from tools import qmix_smac

N = 8  # episodes per tiny dataset


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Tiny 2s3z datasets of every kind, generated once for the module."""
    path = str(tmp_path_factory.mktemp("cache"))
    made = {name: load_or_make("2s3z", name, 0, path, episodes=N) for name in DATASETS}
    return path, made


def test_h5_layout_matches_cfcql_field_by_field(cache):
    _, made = cache
    sizes = map_sizes("2s3z")
    T = sizes["episode_limit"] + 1
    for name, (path, _) in made.items():
        with h5py.File(path, "r") as f:
            assert set(f.keys()) == set(H5_KEYS)
            for key, (shape, dtype) in H5_KEYS.items():
                assert f[key].shape == (N, T) + shape(sizes), (name, key)
                assert f[key].dtype == dtype, (name, key)
                # one episode a chunk: a subset reads only its own
                assert f[key].chunks == (1, T) + shape(sizes), (name, key)
            data = {k: f[k][()] for k in f}
        assert not data["probs"].any()  # save_probs is never enabled in CFCQL's runs
        for e in range(N):
            filled = data["filled"][e, :, 0]
            L = int(filled.sum()) - 1
            assert filled[: L + 1].all() and not filled[L + 1 :].any()
            assert data["terminated"][e, L - 1, 0] == 1 and data["terminated"][e, :, 0].sum() == 1  # timeouts too
            assert data["reward"][e, L:, 0].sum() == 0  # the terminal step holds no reward
            assert data["avail_actions"][e, L].any(-1).all()  # terminal masks recorded
            for key in ("state", "obs", "actions", "avail_actions", "reward"):
                assert not data[key][e, L + 1 :].any(), (name, key)  # zero padding
            avail, actions = data["avail_actions"][e, : L + 1], data["actions"][e, : L + 1, :, 0]
            assert np.take_along_axis(avail, actions[..., None], -1).all()  # every recorded action was available
        loaded = load_h5(path, "2s3z")
        T_used = int(data["filled"].sum(1).max())
        assert loaded["obs"].shape == (N, T_used, 5, 80)  # trimmed to the longest episode
        np.testing.assert_array_equal(loaded["obs"], data["obs"][:, :T_used])
        np.testing.assert_array_equal(loaded["actions"], data["actions"][:, :T_used, :, 0])
        subset = load_h5(path, "2s3z", episodes=[5, 1])  # some episodes, in file order, trimmed to their longest
        np.testing.assert_array_equal(subset["obs"], data["obs"][[1, 5], : subset["obs"].shape[1]])
        assert subset["filled"].sum(1).max() == subset["obs"].shape[1]


def test_same_seed_same_arrays_other_seed_other_arrays(cache, tmp_path):
    _, made = cache
    again, _ = load_or_make("2s3z", "medium_replay", 0, str(tmp_path), episodes=N)
    other, _ = load_or_make("2s3z", "medium_replay", 1, str(tmp_path), episodes=N)
    first, second, third = (load_h5(p, "2s3z") for p in (made["medium_replay"][0], again, other))
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.array_equal(first["reward"], third["reward"][:, : first["reward"].shape[1]])


def test_mixed_is_the_same_indices_of_medium_and_expert(cache):
    _, made = cache
    medium, expert, mixed = (load_h5(made[k][0], "2s3z") for k in ("medium", "expert", "mixed"))
    half = N // 2

    def find(episode_obs, source):
        hits = [i for i in range(N) if np.array_equal(source["obs"][i, : len(episode_obs)], episode_obs)]
        assert len(hits) == 1
        return hits[0]

    T = mixed["obs"].shape[1]
    from_medium = [find(mixed["obs"][i, : min(T, medium["obs"].shape[1])], medium) for i in range(half)]
    from_expert = [find(mixed["obs"][half + i, : min(T, expert["obs"].shape[1])], expert) for i in range(half)]
    assert from_medium == from_expert == sorted(from_medium)


# A dataset card's fields (docs/smac_datasets.md): what made the file and what it holds.
CARD_KEYS = {
    "map",
    "dataset",
    "seed",
    "episodes_requested",
    "checkpoints",
    "policy_dir",
    "simulator_seeds",
    "code_version",
    "episodes",
    "transitions",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
    "win_rate",
    "mean_episode_length",
    "distinct_episodes",
    "variety",
    "rules_revision",
    "generation_time_s",
    "how",
    "file_bytes",
    "sha256",
    "policy_sha256",
}


# How each dataset was made, as its card tells a reader (docs/smac_datasets.md)
HOW_STARTS = {
    "medium": "greedy rollouts (ε = 0) of the shipped medium QMIX checkpoint",
    "expert": "greedy rollouts (ε = 0) of the shipped expert QMIX checkpoint",
    "medium_replay": "a stand-in for CFCQL's dumped replay buffer: ε-greedy rollouts of the QMIX checkpoints",
    "mixed": "the same sorted random half of the indices of medium and of expert",
}
HOW_ENDS = {
    "medium": "on the built-in simulator",
    "expert": "on the built-in simulator",
    "medium_replay": "then shuffled",
    "mixed": "(CFCQL's tools/mixed.py)",
}


def test_card_numbers_match_the_arrays(cache):
    _, made = cache
    sizes = map_sizes("2s3z")
    for name, (path, card) in made.items():
        stats = summarise(episode_stats(load_h5(path, "2s3z"), sizes))
        for key, value in stats.items():
            assert card[key] == pytest.approx(value, rel=1e-6), (name, key)
        assert card["episodes"] == N and card["checkpoints"] and card["code_version"]
        assert (card["map"], card["dataset"], card["seed"]) == ("2s3z", name, 0)
        assert card["how"].startswith(HOW_STARTS[name]) and card["how"].endswith(HOW_ENDS[name]), card["how"]
        assert set(card) == CARD_KEYS, name
        with open(path.removesuffix(".h5") + ".json") as f:
            assert json.load(f) == json.loads(json.dumps(card))  # the card beside the file is the one returned
        # the layout docs/smac_datasets.md gives
        assert path == os.path.join(cache[0], "smac", f"2s3z_{name}_seed0_n{N}.h5")
    # full size
    assert smac_data.dataset_path("6h_vs_8z", "mixed", 3, "/c") == os.path.join("/c", "smac", "6h_vs_8z_mixed_seed3.h5")
    # medium_replay: each replay checkpoint's share of the training run's episodes, rounded down, the remainder to the
    # last
    replay = smac_data.policy_manifest("2s3z")["replay"]
    counts = [c["dataset_episodes"] for c in made["medium_replay"][1]["checkpoints"]]
    shares = [c["episodes"] * N // sum(r["episodes"] for r in replay) for c in replay]
    assert counts == shares[:-1] + [N - sum(shares[:-1])] and sum(counts) == N


def test_default_episode_counts_are_cfcqls_and_mixed_needs_an_even_count(tmp_path):
    assert smac_data.cfcql_episodes("2s3z", "medium_replay") == 1976  # CFCQL's one short file
    assert {smac_data.cfcql_episodes(m, d) for m in MAPS for d in DATASETS if (m, d) != ("2s3z", "medium_replay")} == {
        5000
    }
    with pytest.raises(InputError, match="episodes=3 must be even"):  # half medium, half expert
        load_or_make("2s3z", "mixed", 0, str(tmp_path), episodes=3)


def test_card_misses_are_in_units_of_the_card_tolerance():
    """The fidelity report's targets: return within 10 %, sd within a factor 2, length within 15 % (a miss of 1 is on
    the edge); an unmeasured sd misses by nothing."""
    card = (10.0, 2.0, 50.0)
    edge = smac_data.card_misses(card, 11.0, 57.5, 4.0)
    assert edge == pytest.approx({"return": 1.0, "sd": 1.0, "length": 1.0})
    assert smac_data.card_misses(card, 9.5, 50.0, 1.0) == pytest.approx({"return": 0.5, "sd": 1.0, "length": 0.0})
    unmeasured_sd = smac_data.card_misses(card, 10.0, 42.5)
    assert unmeasured_sd["sd"] == 0.0 and unmeasured_sd["length"] == pytest.approx(1.0)


def test_cli_makes_a_dataset_and_prints_its_card(tmp_path, capsys, monkeypatch):
    """`python -m envs.smac_data --episodes 4 ...`, run in this process: the card, then the file's path."""
    monkeypatch.setattr(
        sys,
        "argv",
        ["envs/smac_data.py", "--map", "2s3z", "--dataset", "medium", "--episodes", "4", "--cache-dir", str(tmp_path)],
    )
    exec(main_block("envs/smac_data.py"), smac_data.__dict__)
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == "dataset: " + os.path.join(tmp_path, "smac", "2s3z_medium_seed0_n4.h5")
    assert lines[-2].startswith("dataset 2s3z medium: 4 episodes")


def test_a_scripted_expert_makes_its_dataset(tmp_path):
    """A scripted expert (tools/ship_policies.py --expert-scripted kite --expert-epsilon 0.02, the kiting team of
    3s_vs_5z, shipped before QMIX won that map) has no weights file: its dataset is its ε-greedy battles, nearly
    all won, and no two alike."""
    policy_dir = tmp_path / "policies"
    shutil.copytree(os.path.join(POLICY_DIR, "3s_vs_5z"), policy_dir / "3s_vs_5z")
    manifest_path = policy_dir / "3s_vs_5z" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["expert"] = {"scripted": "kite", "rollout_epsilon": 0.02, "t_env": None}
    manifest_path.write_text(json.dumps(manifest))
    os.remove(policy_dir / "3s_vs_5z" / "expert.pt")
    path, card = load_or_make("3s_vs_5z", "expert", 0, str(tmp_path), episodes=32, policy_dir=str(policy_dir))
    assert card["episodes"] == 32 and [(c.get("scripted"), c.get("rollout_epsilon")) for c in card["checkpoints"]] == [
        ("kite", 0.02)
    ]
    assert card["win_rate"] >= 0.9 and card["return_std"] > 0
    assert (
        card["how"]
        == "ε-greedy rollouts (ε = 0.02) of the shipped expert scripted team (kite, envs.smac.scripted_actions) "
        "on the built-in simulator"
    )
    actions = load_h5(path, "3s_vs_5z")["actions"]
    assert len(np.unique(actions.reshape(len(actions), -1), axis=0)) == 32
    # greedily, without the variety rules every battle is the same one; with them (3s_vs_5z's rules) they part
    for variety, alike in ((False, True), (True, False)):
        battles = SMACBatch("3s_vs_5z", 4, seed=3, auto_reset=False, variety=variety)
        greedy = rollout(battles, None, 0.0, np.random.default_rng(0), scripted="kite")
        assert (greedy["actions"] == greedy["actions"][:1]).all() == alike and greedy["won"].all()


def test_explore_replaces_actions_with_available_ones_at_rate_epsilon():
    """ε = 0 keeps the actions; otherwise each is replaced with probability ε (one number, or one per
    battle) by a uniform pick among its available actions."""
    from envs.smac_data import explore

    rng = np.random.default_rng(0)
    avail = np.zeros((4000, 3, 5), np.int32)
    avail[:, :, [0, 2, 3]] = 1
    avail[:, 2] = [1, 0, 0, 0, 0]  # a dead agent: no-op only
    greedy = np.zeros((4000, 3), np.int64)
    assert np.array_equal(explore(greedy, avail, 0.0, rng), greedy)
    out = explore(greedy, avail, np.where(np.arange(4000) < 2000, 0.0, 0.3), rng)
    assert np.array_equal(out[:2000], greedy[:2000]) and (out[:, 2] == 0).all()
    changed = out[2000:, :2] != 0  # a uniform pick among {0, 2, 3} keeps 0 a third of the time: rate 0.3 · 2/3
    assert abs(changed.mean() - 0.2) < 0.02 and set(np.unique(out)) == {0, 2, 3}
    assert abs((out[2000:, :2] == 2).mean() - 0.1) < 0.015


def test_cli_defaults_and_help(capsys, monkeypatch):
    """Without flags: 3s_vs_5z mixed, seed 0, CFCQL's episode count, the default cache (what the help says)."""
    calls = []
    monkeypatch.setattr(smac_data, "load_or_make", lambda *a: calls.append(a) or ("p.h5", {}))
    monkeypatch.setattr(smac_data, "format_card", lambda card: "card")
    monkeypatch.setattr(sys, "argv", ["envs/smac_data.py"])
    exec(main_block("envs/smac_data.py"), smac_data.__dict__)
    assert calls == [("3s_vs_5z", "mixed", 0, None, None)] and capsys.readouterr().out == "card\ndataset: p.h5\n"
    monkeypatch.setattr(sys, "argv", ["envs/smac_data.py", "--help"])
    with pytest.raises(SystemExit):
        exec(main_block("envs/smac_data.py"), smac_data.__dict__)
    text = " ".join(capsys.readouterr().out.split())
    for fragment in (
        f"one of {', '.join(MAPS)}",
        f"one of {', '.join(DATASETS)}",
        "dataset seed (>= 0)",
        "episodes (default: CFCQL's count)",
        "default: $INSPO_CACHE or ~/.cache/inspo",
    ):
        assert fragment in text, fragment


def test_a_dataset_is_written_beside_its_cache_file(tmp_path, monkeypatch):
    """The temporary file sits in the cache directory, so the final rename stays on one filesystem
    (atomic): with the system's temporary directory gone, generation still works."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no_such_dir"))
    path, _ = load_or_make("2s3z", "medium", 0, str(tmp_path / "cache"), episodes=2)
    assert sorted(os.listdir(os.path.dirname(path))) == sorted([os.path.basename(path), "2s3z_medium_seed0_n2.json"])


def test_card_win_rate_agrees_with_the_simulator():
    """episode_stats reads wins from the terminal state; the simulator's own flag must agree."""
    battles = SMACBatch("2s3z", 32, seed=3, auto_reset=False)
    # greedy battles win, ε = 0.5 battles lose
    out = rollout(
        battles,
        load_agent(os.path.join(POLICY_DIR, "2s3z", "expert.pt"), "2s3z"),
        np.repeat([0.0, 0.5], 16),
        np.random.default_rng(0),
    )
    stats = episode_stats({k: out[k] for k in ("state", "reward", "filled")}, map_sizes("2s3z"))
    np.testing.assert_array_equal(stats["won"], out["won"])
    np.testing.assert_array_equal(stats["length"], out["length"])
    assert out["won"].any() and not out["won"].all()
    # an episode stored twice counts once among the distinct episodes
    twice = {k: np.concatenate([out[k], out[k][:1]]) for k in ("state", "reward", "filled")}
    assert episode_stats(twice, map_sizes("2s3z"))["distinct_episodes"] == stats["distinct_episodes"]


def test_truncated_or_corrupt_cache_is_rebuilt(cache, tmp_path, capsys):
    _, made = cache
    path, card = load_or_make("2s3z", "expert", 0, str(tmp_path), episodes=N)
    original = load_h5(path, "2s3z")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    rebuilt, _ = load_or_make("2s3z", "expert", 0, str(tmp_path), episodes=N)
    assert "rebuilding" in capsys.readouterr().out
    for key, value in load_h5(rebuilt, "2s3z").items():
        np.testing.assert_array_equal(value, original[key])
    with open(path, "r+b") as f:  # one flipped byte: same size, other checksum
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 0xFF]))
    load_or_make("2s3z", "expert", 0, str(tmp_path), episodes=N)
    assert "rebuilding" in capsys.readouterr().out
    with open(path[:-3] + ".json", "w") as f:  # a damaged card
        f.write("{not json")
    load_or_make("2s3z", "expert", 0, str(tmp_path), episodes=N)
    assert "(JSONDecodeError: " in capsys.readouterr().out
    assert not glob.glob(os.path.join(str(tmp_path), "smac", "*.tmp"))


def test_a_cache_made_by_other_behaviour_policies_is_rebuilt(tmp_path, capsys):
    policy_dir = str(tmp_path / "policies")
    shutil.copytree(os.path.join(POLICY_DIR, "2s3z"), os.path.join(policy_dir, "2s3z"))
    path, card = load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=2, policy_dir=policy_dir)
    assert load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=2, policy_dir=policy_dir) == (path, card)
    shutil.copy(os.path.join(policy_dir, "2s3z", "expert.pt"), os.path.join(policy_dir, "2s3z", "medium.pt"))
    capsys.readouterr()
    _, rebuilt = load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=2, policy_dir=policy_dir)
    assert "the shipped behaviour policies changed since it was made" in capsys.readouterr().out
    assert rebuilt["policy_sha256"] != card["policy_sha256"]


def test_datasets_follow_the_maps_simulator_rules(tmp_path, capsys, monkeypatch):
    """Policies trained under other rules than the map plays make no dataset; a cache made under other rules is
    rebuilt."""
    import dataclasses

    from envs import smac

    policy_dir = str(tmp_path / "policies")
    shutil.copytree(os.path.join(POLICY_DIR, "2s3z"), os.path.join(policy_dir, "2s3z"))
    path, card = load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=2, policy_dir=policy_dir)
    rules = card["variety"]
    assert rules is smac.MAPS["2s3z"].variety
    monkeypatch.setitem(smac.MAPS, "2s3z", dataclasses.replace(smac.MAPS["2s3z"], variety=not rules))
    with pytest.raises(InputError, match=f"trained with variety={rules}, but the map plays with variety={not rules}"):
        load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=2, policy_dir=policy_dir)
    assert "the simulator's rules for this map changed" in capsys.readouterr().out
    manifest_path = os.path.join(policy_dir, "2s3z", "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    with open(manifest_path, "w") as f:
        json.dump({**manifest, "variety": not rules}, f)
    _, rebuilt = load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=2, policy_dir=policy_dir)
    assert rebuilt["variety"] is (not rules)
    capsys.readouterr()
    monkeypatch.setattr("envs.smac_data.RULES_REVISION", smac.RULES_REVISION + 1)  # a rule changed since
    _, rebuilt = load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=2, policy_dir=policy_dir)
    assert "the simulator's rules for this map changed" in capsys.readouterr().out
    assert rebuilt["rules_revision"] == smac.RULES_REVISION + 1


def test_default_cache_dir(monkeypatch):
    from envs.smac_data import default_cache_dir

    monkeypatch.setenv("INSPO_CACHE", "/data/inspo")
    monkeypatch.setenv("XDG_CACHE_HOME", "/xdg")
    assert default_cache_dir() == "/data/inspo"
    monkeypatch.delenv("INSPO_CACHE")
    assert default_cache_dir() == os.path.join("/xdg", "inspo")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/user")
    assert default_cache_dir() == os.path.join("/home/user", ".cache", "inspo")


@pytest.mark.parametrize("map_name", list(MAPS))
def test_shipped_expert_beats_shipped_medium(map_name):
    with open(os.path.join(POLICY_DIR, map_name, "manifest.json")) as f:
        manifest = json.load(f)
    results = {}
    for name in ("medium", "expert"):
        battles = SMACBatch(map_name, 64, seed=7, auto_reset=False)
        scripted = manifest[name].get("scripted")  # a scripted expert (tools/ship_policies.py --expert-scripted)
        agent = None if scripted else load_agent(os.path.join(POLICY_DIR, map_name, manifest[name]["file"]), map_name)
        out = rollout(
            battles, agent, manifest[name].get("rollout_epsilon", 0.0), np.random.default_rng(0), scripted=scripted
        )
        results[name] = (out["won"].mean(), out["reward"].sum(1).mean())
    assert results["expert"] > results["medium"], results
    for name in ("medium", "expert"):  # and each plays as its manifest says (320 other battles; 4 s.d. at p = 0.9)
        assert abs(results[name][0] - manifest[name]["eval"]["win_rate"]) <= 0.15, (
            name,
            results,
            manifest[name]["eval"],
        )
    assert manifest["replay"] and all(e["episodes"] > 0 and 0 <= e["epsilon"] <= 1 for e in manifest["replay"])
    for entry in [manifest["medium"], manifest["expert"], *manifest["replay"]]:
        if "file" in entry:
            assert os.path.getsize(os.path.join(POLICY_DIR, map_name, entry["file"])) < 300_000


# ---------------------------------------------------------------------------------------
# The QMIX trainer
# ---------------------------------------------------------------------------------------
QMIX = [
    "--map",
    "2s3z",
    "--n-envs",
    "16",
    "--updates-per-rollout",
    "2",
    "--batch-episodes",
    "16",
    "--threads",
    "1",
    "--no-progress",
    "--test-episodes",
    "32",
]


def qmix(*argv: str) -> dict:
    """tools/qmix_smac.py with these flags, in this process (the imports and torch's first-optimiser
    set-up, about 5 s a process, are paid once per test worker); its `__main__` block is tested below."""
    return qmix_smac.main(tyro.cli(qmix_smac.Args, args=list(argv)))


@pytest.mark.slow
def test_qmix_learns_on_2s3z(tmp_path):
    args = tyro.cli(
        qmix_smac.Args,
        args=[
            *QMIX,
            "--total-env-steps",
            "15000",
            "--snapshot-interval",
            "15000",
            "--checkpoint-interval",
            "100000",
            "--runs-dir",
            str(tmp_path),
        ],
    )
    with global_rngs_untouched():  # every draw from the trainer's own generator (tyro's parser draws from Python's)
        history = qmix_smac.main(args)["history"]
    with open(os.path.join(tmp_path, "2s3z_seed0", "summary.json")) as f:
        assert json.load(f)["history"] == history
    assert history[0]["t_env"] == 0 and history[-1]["t_env"] >= 15000
    # the untrained greedy team and uniform random play both return about 3; 15,000 steps of QMIX raise the
    # greedy team's return by 1.2 to 10.9 over seeds 0-4 (benchmarks/results/outcome_spread.md)
    assert history[-1]["test_return"] > history[0]["test_return"] + 1.0, history


@pytest.mark.parametrize("bootstrap_timeouts", [True, False])
def test_qmix_buffer_bootstraps_through_a_timeout_only_when_told(bootstrap_timeouts):
    """Three hand-built episodes: a win at step 2, a defeat at step 4, a timeout at the limit. A win and a
    defeat end the value; a timeout does too with --no-bootstrap-timeouts, and is a truncation otherwise."""
    battles = SMACBatch("5m_vs_6m", 3, seed=0)
    T, nA = battles.episode_limit + 1, battles.n_agents
    length = np.array([3, 5, T - 1])
    terminated = np.zeros((3, T), np.uint8)
    terminated[np.arange(3), length - 1] = 1
    episodes = {
        "state": np.zeros((3, T, battles.state_dim), np.float32),
        "obs": np.zeros((3, T, nA, battles.obs_dim), np.float32),
        "actions": np.zeros((3, T, nA), np.int64),
        "avail_actions": np.ones((3, T, nA, battles.n_actions), np.int32),
        "reward": np.ones((3, T), np.float32),
        "terminated": terminated,
        "filled": (np.arange(T) <= length[:, None]).astype(np.int64),
        "won": np.array([True, False, False]),
        "timeout": np.array([False, False, True]),
        "length": length,
    }
    buffer = qmix_smac.ReplayBuffer(8, battles, bootstrap_timeouts)
    buffer.add(episodes)
    terminal = buffer.data["terminal"][:3]
    assert terminal[0, 2] == 1 and terminal[1, 4] == 1 and terminal[:2].sum() == 2
    assert terminal[2].sum() == (0 if bootstrap_timeouts else 1) and terminal[2, T - 2] == (not bootstrap_timeouts)


# a few thousand env steps with a checkpoint every 1500: what the resume tests run
SMALL_RUN = ["--n-envs", "8", "--batch-episodes", "8", "--buffer-episodes", "64", "--test-episodes", "8",
             "--snapshot-interval", "1000", "--checkpoint-interval", "1500"]  # fmt: skip


def qmix_snapshots_straight_and_resumed(tmp_path, capsys, *flags: str) -> list[tuple[dict, dict]]:
    """A run of 4500 env steps, and one stopped at 3000 (after its second checkpoint, with snapshots
    past it) then resumed to 4500: the pairs of same-named snapshots' weights (the lost steps are replayed)."""
    small = [*QMIX, *flags, *SMALL_RUN]
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    qmix(*small, "--total-env-steps", "4500", "--runs-dir", straight)
    qmix(*small, "--total-env-steps", "3000", "--runs-dir", killed)
    capsys.readouterr()
    qmix(*small, "--total-env-steps", "4500", "--runs-dir", killed, "--resume")
    assert "resumed" in capsys.readouterr().out
    a = sorted(glob.glob(os.path.join(straight, "2s3z_seed0", "snapshots", "*.pt")))
    b = sorted(glob.glob(os.path.join(killed, "2s3z_seed0", "snapshots", "*.pt")))
    assert [os.path.basename(p) for p in a] == [os.path.basename(p) for p in b] and len(a) >= 4
    return [
        (torch.load(x, weights_only=True)["state_dict"], torch.load(y, weights_only=True)["state_dict"])
        for x, y in zip(a, b)
    ]


@pytest.mark.slow
def test_qmix_resumes_exactly(tmp_path, capsys):
    for sx, sy in qmix_snapshots_straight_and_resumed(tmp_path, capsys):
        assert all(torch.equal(sx[k], sy[k]) for k in sx)


def test_qmix_starts_from_init_agent_and_freezes_it(tmp_path):
    """--init-agent: the first snapshot (before any update) holds the given weights; with --freeze-agent-steps
    they stay so through the updates of those steps (without, the updates change them); weights of another width
    or a missing file are refused by name."""
    shipped = os.path.join(ROOT, "envs", "smac_policies", "2s3z", "expert.pt")
    want = torch.load(shipped, weights_only=True)["state_dict"]
    for freeze, kept in (("2000", True), ("0", False)):
        runs = str(tmp_path / f"freeze{freeze}")
        qmix(*QMIX, *SMALL_RUN, "--total-env-steps", "1200", "--runs-dir", runs, "--init-agent", shipped,
             "--freeze-agent-steps", freeze)  # fmt: skip
        paths = sorted(glob.glob(os.path.join(runs, "2s3z_seed0", "snapshots", "*.pt")))
        first, last = (torch.load(p, weights_only=True)["state_dict"] for p in (paths[0], paths[-1]))
        assert all(torch.equal(first[k], want[k]) for k in want)
        assert all(torch.equal(last[k], want[k]) for k in want) == kept, freeze
        with open(paths[-1][:-3] + ".json") as f:
            assert json.load(f)["updates"] > 0
    with pytest.raises(InputError, match="--rnn-hidden 32"):
        qmix(*QMIX, *SMALL_RUN, "--runs-dir", str(tmp_path / "a"), "--init-agent", shipped, "--rnn-hidden", "32")
    with pytest.raises(InputError, match="does not exist"):
        qmix(*QMIX, *SMALL_RUN, "--runs-dir", str(tmp_path / "b"), "--init-agent", str(tmp_path / "none.pt"))


def fake_run(path, evals: list[tuple], weights: set[int], variety=None) -> None:
    """A run directory of 2s3z snapshots every 1000 env steps, 800 episodes apart, whose greedy evaluations
    (win rate, return[, episode length: 50 unless given[, the return's sd]]) are written in
    (tools/ship_policies.py reads a snapshot's "eval" instead of playing); only the snapshots in `weights` have
    weight files; `variety` as tools/qmix_smac.py --variety."""
    os.makedirs(path / "snapshots")
    for k, (win, ret, *rest) in enumerate(evals):
        length = rest[0] if rest else 50.0
        spread = {"return_std": rest[1]} if len(rest) > 1 else {}
        row = {
            "map": "2s3z",
            "t_env": 1000 * k,
            "episodes": 800 * k,
            "updates": k,
            "epsilon": 0.05,
            "test_win_rate": win,
            "test_return": ret,
            "test_episode_length": length,
            "episodes_since_previous": 800 * (k > 0),
            "mean_epsilon_since_previous": 0.05,
            "wall_time_s": k,
            "args": {"map": "2s3z", "variety": variety},
            "eval": {"win_rate": win, "return": ret, "episode_length": length, **spread},
        }
        with open(path / "snapshots" / f"agent_{1000 * k:010d}.json", "w") as f:
            json.dump(row, f)
        if k in weights:
            (path / "snapshots" / f"agent_{1000 * k:010d}.pt").write_bytes(bytes([k]))


def test_ship_policies_picks_from_the_weights_a_run_holds(tmp_path):
    from tools import ship_policies

    evals = [(0.0, 3.0), (0.0, 8.0), (0.0, 11.0), (0.1, 13.0), (0.5, 16.0), (0.9, 19.0), (1.0, 20.0)]
    ship = dict(policy_dir=str(tmp_path / "policies"), eval_episodes=8, candidates=3)
    fake_run(tmp_path / "full", evals, set(range(7)))
    manifest = ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "full"), **ship))
    # expert: the best of the 3 best tests; medium: return and length nearest CFCQL's 12.76 and 50.8 before it
    # (all lengths 50 here: the return decides); replay: the 1976
    # episodes before the medium, played by snapshots 0, 1 (800 each) and 2 (376)
    assert (manifest["expert"]["t_env"], manifest["medium"]["t_env"]) == (6000, 3000)
    assert manifest["ship_args"]["candidates"] == 3 and "policy_dir" not in manifest["ship_args"]  # how it was picked
    assert [(e["t_env"], e["episodes"]) for e in manifest["replay"]] == [(0, 376), (1000, 800), (2000, 800)]
    shipped = tmp_path / "policies" / "2s3z"
    assert (shipped / "expert.pt").read_bytes() == bytes([6]) and (shipped / "medium.pt").read_bytes() == bytes([3])
    # a carried run without the weights of snapshots 6 and 3: the next best expert and medium (their windows held)
    fake_run(tmp_path / "carried", evals, {0, 1, 2, 4, 5})
    manifest = ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "carried"), **ship))
    assert (manifest["expert"]["t_env"], manifest["medium"]["t_env"]) == (5000, 2000)
    fake_run(tmp_path / "lost", evals, {3, 6})  # the medium-replay window's weights are gone
    with pytest.raises(InputError, match="--keep-episodes 1976"):
        ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "lost"), **ship))
    # the expert from another run: the medium from all of --run-dir's snapshots, or from those before --medium-before
    manifest = ship_policies.main(
        ship_policies.Args(run_dir=str(tmp_path / "carried"), expert_run_dir=str(tmp_path / "full"), **ship)
    )
    assert (manifest["expert_run"], manifest["expert"]["t_env"], manifest["medium"]["t_env"]) == ("full", 6000, 2000)
    assert manifest["expert_trainer_args"] == {"map": "2s3z", "variety": None}  # each policy with its run's args
    with open(tmp_path / "policies" / "2s3z" / "expert.json") as f:
        assert json.load(f)["trainer_args"] == manifest["expert_trainer_args"]
    evals[5] = (0.0, 12.8)  # nearer CFCQL's 12.76 than snapshot 2's 11.0, after 3000 env steps
    fake_run(tmp_path / "late", evals, set(range(7)))
    late = dict(run_dir=str(tmp_path / "late"), expert_run_dir=str(tmp_path / "full"), **ship)
    assert ship_policies.main(ship_policies.Args(**late))["medium"]["t_env"] == 5000
    # the manifest names the simulator's rules the run trained with (default: the map's)
    assert manifest["variety"] is MAPS["2s3z"].variety
    fake_run(tmp_path / "varied", evals, set(range(7)), variety=not MAPS["2s3z"].variety)
    varied = ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "varied"), **ship))
    assert varied["variety"] is not MAPS["2s3z"].variety
    with pytest.raises(InputError, match="--expert-run-dir trained with variety=.*accepted: two runs on the same"):
        ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "varied"), expert_run_dir=str(tmp_path / "full")))
    assert ship_policies.main(ship_policies.Args(**late, medium_before=3000))["medium"]["t_env"] == 2000
    with pytest.raises(InputError, match="--medium-before 0 is not accepted"):
        ship_policies.main(ship_policies.Args(**late, medium_before=0))
    # the length counts as much as the return: CFCQL's return exactly but 80 steps long (0 + 29.2 / 50.8 off the
    # card) loses to 13.5 in 50.8 steps (0.74 / 12.76 + 0)
    evals = [(0.0, 3.0), (0.0, 8.0), (0.0, 12.76, 80.0), (0.1, 13.5, 50.8), (0.5, 16.0), (0.9, 19.0), (1.0, 20.0)]
    fake_run(tmp_path / "lengths", evals, set(range(7)))
    manifest = ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "lengths"), **ship))
    assert manifest["medium"]["t_env"] == 3000
    assert manifest["cfcql_medium_card"] == {"return": 12.76, "return_sd": 3.32, "episode_length": 50.8}
    # an expert named by its env steps; a snapshot without weights or a scripted expert beside it is refused
    manifest = ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "lengths"), expert_t_env=5000, **ship))
    assert (manifest["expert"]["t_env"], manifest["medium"]["t_env"]) == (5000, 3000)
    with pytest.raises(InputError, match="--expert-t-env 6000 is not accepted; .* e.g. 2000, 4000, 5000"):
        ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "carried"), expert_t_env=6000, **ship))
    with pytest.raises(InputError, match="not accepted together"):
        ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "full"), expert_t_env=50, expert_scripted="kite"))
    # a medium named by its env steps (not the one nearest the card); one at or after the expert is refused
    manifest = ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "lengths"), medium_t_env=2000, **ship))
    assert (manifest["expert"]["t_env"], manifest["medium"]["t_env"]) == (6000, 2000)
    assert [r["file"] for r in manifest["replay"]] == ["replay_0000000000.pt", "replay_0000001000.pt"]
    with pytest.raises(InputError, match="--medium-t-env 6000 is not accepted; .* e.g. 3000, 4000, 5000"):
        ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "lengths"), medium_t_env=6000, **ship))
    with pytest.raises(InputError, match="not accepted together"):
        ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "lengths"), medium_t_env=2000, medium_before=3000))
    # the shipped expert kept (weights, evaluation, run) beside a medium and replay from another run, picked from
    # all of that run's snapshots; the return's spread counts in factors of 2: 12.76 ± 0.5 (log2(3.32 / 0.5) = 2.7
    # off) loses to 13.5 ± 3 (0.58 + 0.15)
    evals = [(0.0, 3.0), (0.0, 8.0), (0.0, 12.76, 50.8, 0.5), (0.1, 13.5, 50.8, 3.0), (0.5, 16.0), (0.9, 19.0)]
    fake_run(tmp_path / "spread", evals, set(range(6)))
    expert = (tmp_path / "policies" / "2s3z" / "expert.pt").read_bytes()
    manifest = ship_policies.main(ship_policies.Args(run_dir=str(tmp_path / "spread"), expert_shipped=True, **ship))
    assert (manifest["expert_run"], manifest["expert"]["t_env"], manifest["medium"]["t_env"]) == ("lengths", 6000, 3000)
    assert (tmp_path / "policies" / "2s3z" / "expert.pt").read_bytes() == expert
    assert manifest["source_run"] == "spread" and manifest["expert_curve"][-1]["t_env"] == 6000
    for flags in ({"expert_t_env": 5000}, {"expert_run_dir": str(tmp_path / "full")}):
        with pytest.raises(InputError, match="--expert-shipped are not accepted together"):
            ship_policies.main(
                ship_policies.Args(run_dir=str(tmp_path / "spread"), expert_shipped=True, **flags, **ship)
            )


@pytest.mark.slow
def test_a_run_moved_without_its_replay_buffer_resumes_from_its_networks(tmp_path, capsys):
    """A run directory copied to another machine without its buffer file (hundreds of MB) resumes from the
    networks with an empty buffer, says so, and its history goes on. A checkpoint written before a flag existed
    resumes with the flag's default; a flag that differs from the checkpoint's is refused by name."""
    small = [*QMIX, *SMALL_RUN]
    qmix(*small, "--total-env-steps", "3200", "--runs-dir", str(tmp_path))
    run = tmp_path / "2s3z_seed0"
    buffers = glob.glob(str(run / "buffer_*"))
    assert buffers
    for path in buffers:
        os.remove(path)
    with open(run / "latest.json") as f:
        state_path = run / json.load(f)["state"]
    state = torch.load(state_path, weights_only=False)
    del state["args"]["init_agent"], state["args"]["freeze_agent_steps"]  # flags added since this checkpoint
    torch.save(state, state_path)
    with pytest.raises(InputError, match="was trained with --td-lambda 0.6, this run has 0.3"):
        qmix(*small, "--total-env-steps", "4500", "--runs-dir", str(tmp_path), "--resume", "--td-lambda", "0.3")
    capsys.readouterr()
    out = qmix(*small, "--total-env-steps", "4500", "--runs-dir", str(tmp_path), "--resume")
    assert "empty replay buffer" in capsys.readouterr().out
    assert out["t_env"] >= 4500 and out["history"][0]["t_env"] == 0


# ---------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------
def _write_h5(path, arrays):
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value)


def _raw(path):
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}


def test_bad_dataset_files(cache, tmp_path):
    _, made = cache
    raw = _raw(made["medium"][0])
    cases = {}
    cases["missing_key"] = {k: v for k, v in raw.items() if k != "obs"}
    cases["nan"] = {
        **raw,
        "state": np.where(np.arange(raw["state"].size).reshape(raw["state"].shape) == 5, np.nan, raw["state"]).astype(
            np.float32
        ),
    }
    unavailable = raw["avail_actions"].copy()
    np.put_along_axis(unavailable[:1, :1], raw["actions"][:1, :1], 0, -1)
    cases["unavailable"] = {**raw, "avail_actions": unavailable}
    cases["float_actions"] = {**raw, "actions": raw["actions"].astype(np.float32)}
    cases["empty"] = {**raw, "filled": np.zeros_like(raw["filled"])}
    messages = {
        "missing_key": "lacks the keys",
        "nan": "NaN",
        "unavailable": "unavailable",
        "float_actions": "dtype",
        "empty": "filled",
    }
    for name, arrays in cases.items():
        path = str(tmp_path / f"{name}.h5")
        _write_h5(path, arrays)
        with pytest.raises(InputError, match=messages[name]):
            load_h5(path, "2s3z")
    with pytest.raises(InputError, match="needs"):  # a 2s3z file read as 3s_vs_5z
        load_h5(made["medium"][0], "3s_vs_5z")
    with pytest.raises(InputError, match="does not exist"):
        load_h5(str(tmp_path / "none.h5"), "2s3z")
    (tmp_path / "text.h5").write_text("not an h5 file")
    with pytest.raises(InputError, match="not a readable h5"):
        load_h5(str(tmp_path / "text.h5"), "2s3z")
    with pytest.raises(InputError, match=rf"holds {N} episodes; episode indices must lie in 0..{N - 1}"):
        load_h5(made["medium"][0], "2s3z", np.array([0, N]))
    without_probs = str(tmp_path / "without_probs.h5")  # `probs` is all zeros in CFCQL's files and optional here
    shutil.copy(made["medium"][0], without_probs)
    with h5py.File(without_probs, "r+") as f:
        del f["probs"]
    for key, value in load_h5(without_probs, "2s3z").items():
        np.testing.assert_array_equal(value, load_h5(made["medium"][0], "2s3z")[key])


def test_bad_names_checkpoints_and_directories(tmp_path):
    with pytest.raises(InputError, match="unknown SMAC map 'nope'.*2s3z"):
        load_or_make("nope", "medium", 0, str(tmp_path))
    with pytest.raises(InputError, match="unknown SMAC dataset 'good'.*medium_replay"):
        load_or_make("2s3z", "good", 0, str(tmp_path))
    with pytest.raises(InputError, match="unknown SMAC dataset 'good'.*medium_replay"):
        make_dataset("2s3z", "good", 0, str(tmp_path / "good.h5"), 2)
    with pytest.raises(InputError, match="needs"):  # a 2s3z agent on 5m_vs_6m
        load_agent(os.path.join(POLICY_DIR, "2s3z", "expert.pt"), "5m_vs_6m")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(InputError, match="not a QMIX agent checkpoint"):
        load_agent(str(tmp_path / "junk.pt"), "2s3z")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="cannot be written"):
        load_or_make("2s3z", "medium", 0, str(blocker), episodes=2)
    from tools import ship_policies  # a scripted expert's ε: below 1, and only for a scripted expert

    for flags in (
        {"expert_epsilon": 0.02},
        {"expert_epsilon": 1.0, "expert_scripted": "kite"},
        {"expert_epsilon": -0.1, "expert_scripted": "kite"},
    ):
        with pytest.raises(
            InputError, match=f"--expert-epsilon {flags['expert_epsilon']} is not accepted; accepted: 0 <= ε < 1"
        ):
            ship_policies.main(ship_policies.Args(run_dir=str(tmp_path), **flags))
    with pytest.raises(InputError, match="holds no snapshots"):  # accepted: on to the run directory
        ship_policies.main(ship_policies.Args(run_dir=str(tmp_path), expert_epsilon=0.02, expert_scripted="kite"))


def test_cli_bad_inputs(tmp_path, capsys, monkeypatch):
    assert_cli_error("tools/qmix_smac.py", ["--map", "4m", "--runs-dir", tmp_path], capsys, monkeypatch, "4m", "2s3z")
    assert_cli_error(
        "tools/qmix_smac.py", ["--td-lambda", "2", "--runs-dir", tmp_path], capsys, monkeypatch, "--td-lambda", "2"
    )
    assert_cli_error(
        "envs/smac_data.py",
        ["--map", "2s3z", "--dataset", "good", "--cache-dir", tmp_path],
        capsys,
        monkeypatch,
        "good",
        "medium_replay",
    )
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_cli_error("tools/qmix_smac.py", ["--runs-dir", blocker], capsys, monkeypatch, "cannot be written")
    assert blocker.read_text() == ""
    # and once as a user types it, in a fresh interpreter
    made = subprocess.run(
        [sys.executable, "-m", "envs.smac_data", "--map", "2s3z", "--dataset", "good", "--cache-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert_one_line_error(made, "good", "medium_replay")


def test_code_version_is_this_checkouts_commit_from_any_directory(tmp_path, monkeypatch):
    from envs.smac_data import code_version

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if not head:
        pytest.skip("not a git checkout")
    monkeypatch.chdir(tmp_path)  # a user running the scripts from elsewhere
    assert code_version().removesuffix("+dirty") == head

    def no_git(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory: 'git'")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert code_version() == "unknown"


def test_replay_rollouts_play_with_their_checkpoints_epsilon():
    """medium_replay's episodes are ε-greedy with each checkpoint's ε: ε = 1 plays other actions than ε = 0
    in the same battles (CFCQL's buffer held its exploring episodes)."""
    from envs.smac_data import _rollouts, policy_manifest

    medium = policy_manifest("2s3z")["medium"]
    path = os.path.join(POLICY_DIR, "2s3z")
    greedy, exploring = (next(_rollouts("2s3z", medium, path, 2, epsilon, 123, 1000)) for epsilon in (0.0, 1.0))
    assert not np.array_equal(greedy["actions"][:, :5], exploring["actions"][:, :5])
    assert np.array_equal(next(_rollouts("2s3z", medium, path, 2, 0.0, 123, 1000))["actions"], greedy["actions"])
