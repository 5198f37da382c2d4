"""Every input checked at the boundary: one table of bad inputs for the three scripts (flags and
damaged datasets) and for the envs API. A script's row runs its command line in this process (as
`python inspo_*.py ...` would, minus the interpreter start) and must end with exit code 2, exactly
one `error:` line naming the bad value, no traceback, and every file that existed before unchanged.
"""

import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import run_cli, write_buffer
from envs import InputError

SEED_TOO_BIG = str(2**32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Damaged and mislabelled datasets, a file where a directory belongs, a finished run."""
    root = tmp_path_factory.mktemp("bad")
    f = {"root": str(root), "a_file": str(root / "a_file")}
    with open(f["a_file"], "w") as out:
        out.write("keep me")

    def xor(name, pairs=((0, 1), (1, 0)), **edit):
        pairs = np.asarray(pairs)
        t = len(pairs)
        actions = np.zeros((4, t + 1, 2), np.int64)
        actions[:, :t] = pairs
        filled = np.ones((4, t + 1))
        terminated = np.zeros((4, t + 1))
        terminated[:, t - 1] = 1
        obs = np.tile([0.0, 1.0, 0.0, 1.0], (4, t + 1, 2, 1))
        path = write_buffer(
            str(root / name),
            obs[:, :, 0],
            obs,
            actions,
            np.ones((4, t + 1)),
            terminated,
            edit.get("filled", filled),
            n_actions=2,
        )
        return path

    f["xor_buffer_02_20"] = xor("buffer_02_20")  # AlberDICE's name of XOR dataset (a)
    path = xor("xor_unavailable")
    avail = np.load(os.path.join(path, "avail_actions.npy"))
    avail[1, 0, 0, 0] = 0  # agent 0 took action 0 at slot 0 of episode 1: marked unavailable
    np.save(os.path.join(path, "avail_actions.npy"), avail)
    f["xor_unavailable"] = path
    f["xor_empty"] = xor("xor_empty", filled=np.zeros((4, 3)))
    gap = np.ones((4, 3))
    gap[2, 1] = 0
    f["xor_gap"] = xor("xor_gap", filled=gap)

    def bridge(name, **changes):
        n, slots = 3, 9
        arrays = dict(
            state=np.zeros((n, slots, 8)),
            obs=np.zeros((n, slots, 2, 8)),
            actions=np.zeros((n, slots, 2), np.int64),
            reward=np.full((n, slots), -0.1),
            terminated=np.zeros((n, slots)),
            filled=np.ones((n, slots)),
        )
        arrays.update(changes)
        return write_buffer(
            str(root / name),
            arrays["state"],
            arrays["obs"],
            arrays["actions"],
            arrays["reward"],
            arrays["terminated"],
            arrays["filled"],
            n_actions=5,
        )

    f["bridge_buffer_mix"] = bridge("buffer_mix")
    f["bridge_three_agents"] = bridge("bridge_three_agents", obs=np.zeros((3, 9, 3, 8)))
    f["bridge_nan"] = bridge("bridge_nan", reward=np.where(np.arange(9) == 3, np.nan, -0.1) * np.ones((3, 9)))
    f["bridge_action"] = bridge("bridge_action", actions=np.full((3, 9, 2), 7))
    f["bridge_features"] = bridge("bridge_features", state=np.zeros((3, 9, 5)))
    f["bridge_empty"] = bridge("bridge_empty", filled=np.zeros((3, 9)))
    f["bridge_filled_2"] = bridge("bridge_filled_2", filled=np.full((3, 9), 2))
    path = bridge("bridge_unavailable")
    avail = np.load(os.path.join(path, "avail_actions.npy"))
    avail[0, 2, 1, 0] = 0
    np.save(os.path.join(path, "avail_actions.npy"), avail)
    f["bridge_unavailable"] = path
    path = bridge("bridge_no_terminated")
    os.remove(os.path.join(path, "terminated.npy"))
    f["bridge_no_terminated"] = path
    path = bridge("bridge_float_actions")
    np.save(os.path.join(path, "actions.npy"), np.zeros((3, 9, 2, 1), np.float32))
    f["bridge_float_actions"] = path

    # SMAC: a small file in CFCQL's layout, then damaged copies
    from envs.smac import SMACBatch
    from envs.smac_data import H5Writer, map_sizes, rollout

    good = str(root / "2s3z_good.h5")
    writer = H5Writer(good, 6, map_sizes("2s3z"))
    out = rollout(
        SMACBatch("2s3z", 6, seed=3, auto_reset=False), None, 0.0, np.random.default_rng(0), scripted="attack-nearest"
    )
    writer.write({k: v for k, v in out.items() if k not in ("won", "timeout", "length")})
    writer.close()
    f["smac_good"] = good

    def damaged(name, edit):
        path = str(root / name)
        shutil.copy(good, path)
        with h5py.File(path, "r+") as h5:
            edit(h5)
        return path

    def unavailable(h5):
        avail = h5["avail_actions"][...]
        taken = h5["actions"][0, 0, 0]
        avail[0, 0, 0, taken] = 0
        h5["avail_actions"][...] = avail

    def nan_state(h5):
        state = h5["state"][...]
        state[1, 2, 0] = np.nan
        h5["state"][...] = state

    def gap(h5):  # a hole in episode 0's filled steps
        filled = h5["filled"][...]
        filled[0, 2] = 0
        h5["filled"][...] = filled

    def action_11(h5):
        actions = h5["actions"][...]
        actions[1, 0, 2] = 11
        h5["actions"][...] = actions

    def garbled_chunk(h5):  # the chunk's bytes overwritten once the file is closed (h5py checks nothing on open)
        info = h5["state"].id.get_chunk_info(2)
        f["smac_garbled_at"] = (info.byte_offset, info.size)

    f["smac_unavailable"] = damaged("2s3z_unavailable.h5", unavailable)
    f["smac_nan"] = damaged("2s3z_nan.h5", nan_state)
    f["smac_gap"] = damaged("2s3z_gap.h5", gap)
    f["smac_action_11"] = damaged("2s3z_action_11.h5", action_11)
    f["smac_garbled"] = damaged("2s3z_garbled.h5", garbled_chunk)
    offset, size = f.pop("smac_garbled_at")
    with open(f["smac_garbled"], "r+b") as out:
        out.seek(offset)
        out.write(b"\xff" * size)
    f["smac_not_h5"] = str(root / "not.h5")
    with open(f["smac_not_h5"], "w") as out:
        out.write("this is not an h5 file")
    return f


def snapshot(root: str) -> dict:
    out = {}
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[path] = f.read()
    return out


# (script, flags, fragments the error line must name); {name} is replaced by the files fixture's paths
ROWS = [
    # inspo_matrix.py
    ("inspo_matrix.py", "--game chess", ["'chess'", "xor, mne"]),
    ("inspo_matrix.py", "--game mne --dataset b", ["'b'", "balanced"]),
    ("inspo_matrix.py", "--dataset d", ["'d'", "accepted for xor: a, b, c"]),
    ("inspo_matrix.py", "--dataset-dir /nonexistent/buffer", ["/nonexistent/buffer", "does not exist"]),
    ("inspo_matrix.py", "--game mne --dataset balanced --dataset-dir /tmp", ["--dataset-dir", "--game xor"]),
    ("inspo_matrix.py", "--alpha -1", ["--alpha -1", "[0, ∞)"]),
    ("inspo_matrix.py", "--alpha nan", ["--alpha nan", "finite"]),
    ("inspo_matrix.py", "--beta-0 -0.5", ["--beta-0 -0.5"]),
    ("inspo_matrix.py", "--alpha 0 --beta-0 0", ["--alpha 0", "--beta-0 0"]),
    ("inspo_matrix.py", "--target-kl inf", ["--target-kl inf", "finite"]),
    ("inspo_matrix.py", "--learning-rate 0", ["--learning-rate 0", "(0, ∞)"]),
    ("inspo_matrix.py", "--tau 5", ["--tau 5", "(0, 1]"]),
    ("inspo_matrix.py", "--gamma 2", ["--gamma 2", "[0, 1]"]),
    ("inspo_matrix.py", "--beta-decay 1.5", ["--beta-decay 1.5", "[0, 1]"]),
    ("inspo_matrix.py", "--weight-clip 0", ["--weight-clip 0", "(0, ∞)"]),
    ("inspo_matrix.py", "--num-updates 0", ["--num-updates 0", "integer in [1,"]),
    ("inspo_matrix.py", "--eval-episodes 0", ["--eval-episodes 0"]),
    ("inspo_matrix.py", "--hidden-dim 0", ["--hidden-dim 0"]),
    ("inspo_matrix.py", "--pool-factor 0", ["--pool-factor 0"]),
    ("inspo_matrix.py", "--num-plays 0", ["--num-plays 0"]),
    ("inspo_matrix.py", "--batch-size 100000000000", ["--batch-size 100000000000", "integer in [1, 1048576]"]),
    ("inspo_matrix.py", "--seed -1", ["--seed -1", "[0, 2**32)"]),
    ("inspo_matrix.py", f"--seed {SEED_TOO_BIG}", [f"--seed {SEED_TOO_BIG}"]),
    ("inspo_matrix.py", "--dataset-seed -1", ["--dataset-seed -1"]),
    ("inspo_matrix.py", "--runs-dir {a_file}", ["--runs-dir", "a_file", "cannot be written"]),
    ("inspo_matrix.py", "--runs-dir {a_file}/sub", ["--runs-dir", "a_file/sub"]),
    ("inspo_matrix.py", "--track", ["--track", "pip install wandb"]),
    ("inspo_matrix.py", "--dataset b --dataset-dir {xor_buffer_02_20}", ["--dataset b", "buffer_02_20", "--dataset a"]),
    (
        "inspo_matrix.py",
        "--dataset-dir {xor_unavailable}",
        ["xor_unavailable/actions.npy': episode 1 slot 0", "unavailable"],
    ),
    ("inspo_matrix.py", "--dataset-dir {xor_empty}", ["xor_empty", "no transition"]),
    ("inspo_matrix.py", "--dataset-dir {xor_gap}", ["filled.npy", "episode 2"]),
    # inspo_bridge.py
    ("inspo_bridge.py", "--dataset expert", ["'expert'", "accepted: optimal, mixed"]),
    ("inspo_bridge.py", "--alpha -1", ["--alpha -1"]),
    ("inspo_bridge.py", "--gamma 2", ["--gamma 2"]),
    ("inspo_bridge.py", "--tau 0", ["--tau 0", "(0, 1]"]),
    ("inspo_bridge.py", "--learning-rate 0", ["--learning-rate 0"]),
    ("inspo_bridge.py", "--weight-clip 0", ["--weight-clip 0"]),
    ("inspo_bridge.py", "--checkpoint-interval 0", ["--checkpoint-interval 0"]),
    ("inspo_bridge.py", "--batch-size 0", ["--batch-size 0"]),
    ("inspo_bridge.py", "--seed -1", ["--seed -1"]),
    ("inspo_bridge.py", "--dataset-seed -1", ["--dataset-seed -1"]),
    ("inspo_bridge.py", "--cache-dir {a_file}", ["--cache-dir", "a_file"]),
    ("inspo_bridge.py", "--runs-dir {a_file}", ["--runs-dir", "a_file"]),
    ("inspo_bridge.py", "--resume {root}/none.pt", ["--resume", "none.pt", "no such checkpoint"]),
    ("inspo_bridge.py", "--resume {a_file}", ["--resume", "a_file", "not a readable"]),
    ("inspo_bridge.py", "--track", ["--track", "wandb"]),
    ("inspo_bridge.py", "--dataset optimal --dataset-dir {bridge_buffer_mix}", ["--dataset optimal", "'mixed'"]),
    ("inspo_bridge.py", "--dataset-dir {bridge_nan}", ["reward.npy", "NaN"]),
    ("inspo_bridge.py", "--dataset-dir {bridge_action}", ["actions.npy", "accepted 0..4"]),
    ("inspo_bridge.py", "--dataset-dir {bridge_features}", ["8 features"]),
    ("inspo_bridge.py", "--dataset-dir {bridge_empty}", ["bridge_empty", "no transition"]),
    ("inspo_bridge.py", "--dataset-dir {bridge_filled_2}", ["filled.npy", "other than 0 and 1"]),
    (
        "inspo_bridge.py",
        "--dataset-dir {bridge_unavailable}",
        ["bridge_unavailable/actions.npy': episode 0 slot 2", "agent 1", "unavailable"],
    ),
    ("inspo_bridge.py", "--dataset-dir {bridge_no_terminated}", ["has no terminated.npy"]),
    ("inspo_bridge.py", "--dataset-dir {bridge_float_actions}", ["actions.npy", "dtype float32"]),
    ("inspo_bridge.py", "--dataset-dir {bridge_three_agents}", ["obs.npy", "(3, 9, 3, 8)", "2 agents, 5 actions"]),
    ("inspo_bridge.py", "--alpha 0 --beta-0 0", ["--alpha 0", "--beta-0 0", "α > 0 or β_0 > 0"]),
    # inspo_smac.py
    ("inspo_smac.py", "--map 4m", ["'4m'", "accepted: 2s3z, 3s_vs_5z, 5m_vs_6m, 6h_vs_8z"]),
    ("inspo_smac.py", "--dataset good", ["'good'", "accepted: medium, medium_replay, expert, mixed"]),
    ("inspo_smac.py", "--gamma 2", ["--gamma 2"]),
    ("inspo_smac.py", "--learning-rate 0", ["--learning-rate 0"]),
    ("inspo_smac.py", "--tau 0", ["--tau 0"]),
    ("inspo_smac.py", "--td-lambda 1.5", ["--td-lambda 1.5", "accepted: a finite number in [0, 1]"]),
    ("inspo_smac.py", "--critic-probe-episodes 0", ["--critic-probe-episodes 0", "[1, 100000]"]),
    ("inspo_smac.py", "--target-kl -0.1", ["--target-kl -0.1"]),
    ("inspo_smac.py", "--batch-size 0", ["--batch-size 0"]),
    ("inspo_smac.py", "--batch-episodes 0", ["--batch-episodes 0"]),
    ("inspo_smac.py", "--rnn-hidden 0", ["--rnn-hidden 0"]),
    ("inspo_smac.py", "--final-eval-episodes 10000000", ["--final-eval-episodes 10000000"]),
    ("inspo_smac.py", "--dataset-episodes 0", ["--dataset-episodes 0"]),
    ("inspo_smac.py", "--seed -1", ["--seed -1"]),
    ("inspo_smac.py", f"--dataset-seed {SEED_TOO_BIG}", [f"--dataset-seed {SEED_TOO_BIG}"]),
    ("inspo_smac.py", "--env-backend sc2 --dataset-file {smac_good}", ["SC2PATH"]),
    ("inspo_smac.py", "--cache-dir {a_file}", ["--cache-dir", "a_file"]),
    ("inspo_smac.py", "--runs-dir {a_file}", ["--runs-dir", "a_file"]),
    ("inspo_smac.py", "--resume {root}/none.pt", ["--resume", "none.pt"]),
    ("inspo_smac.py", "--resume {a_file}", ["--resume", "a_file", "not a readable"]),
    ("inspo_smac.py", "--track", ["--track", "wandb"]),
    ("inspo_smac.py", "--dataset-file {root}/none.h5", ["--dataset-file", "none.h5", "no such file"]),
    ("inspo_smac.py", "--map 3s_vs_5z --dataset-file {smac_good}", ["3s_vs_5z", "needs"]),
    ("inspo_smac.py", "--map 2s3z --dataset-file {smac_unavailable}", ["2s3z_unavailable.h5", "unavailable"]),
    ("inspo_smac.py", "--map 2s3z --dataset-file {smac_nan}", ["2s3z_nan.h5", "state"]),
    ("inspo_smac.py", "--map 2s3z --dataset-file {smac_not_h5}", ["not.h5"]),
    ("inspo_smac.py", "--map 2s3z --dataset-file {smac_gap}", ["2s3z_gap.h5", "'filled' must be a prefix of ones"]),
    ("inspo_smac.py", "--map 2s3z --dataset-file {smac_action_11}", ["2s3z_action_11.h5", "actions outside 0..10"]),
    ("inspo_smac.py", "--map 2s3z --dataset-file {smac_garbled}", ["2s3z_garbled.h5", "truncated or corrupt"]),
    ("inspo_smac.py", "--alpha 0 --beta-0 0", ["--alpha 0", "--beta-0 0", "α > 0 or β_0 > 0"]),
]


@pytest.mark.parametrize("script, flags, fragments", ROWS, ids=[f"{s[6:-3]}: {f}" for s, f, _ in ROWS])
def test_bad_input_is_one_error_line_exit_2_and_nothing_lost(
    files, tmp_path, capsys, monkeypatch, script, flags, fragments
):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "earlier_run").mkdir()
    (runs / "earlier_run" / "summary.json").write_text('{"final_return": 1.0}')
    argv = [part.format(**files) for part in flags.split()]
    if "--runs-dir" not in flags:
        argv += ["--runs-dir", str(runs)]
    if script != "inspo_matrix.py" and "--cache-dir" not in flags:
        argv += ["--cache-dir", str(tmp_path / "cache")]
    fragments = [fragment.format(**files) for fragment in fragments]
    before = snapshot(files["root"]), snapshot(str(runs))
    code, err = run_cli(script, argv + ["--no-progress"], capsys, monkeypatch)
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert (snapshot(files["root"]), snapshot(str(runs))) == before  # nothing that existed was changed
    assert sorted(os.listdir(runs)) == ["earlier_run"]  # and no run directory was started


def test_the_table_is_at_least_sixty_rows():
    assert len(ROWS) + len(ENV_ROWS) >= 60


# --- the envs API: every public entry point rejects bad arguments with InputError ------------
def _smac_batch(**kwargs):
    from envs.smac import SMACBatch

    return SMACBatch(**{"map_name": "2s3z", "n_battles": 2, **kwargs})


def _reset_batch():
    battles = _smac_batch()
    battles.reset()
    return battles


def _sc2_env(**kwargs):
    from envs.smac import StarCraft2Env

    env = StarCraft2Env("2s3z", **kwargs)
    env.reset()
    return env


def _parallel(kind):
    if kind == "smac":
        from envs.smac import SMACParallelEnv

        return SMACParallelEnv("2s3z")
    if kind == "bridge":
        from envs.bridge import BridgeEnv

        return BridgeEnv()
    from envs.matrix import MatrixGameEnv

    return MatrixGameEnv("xor")


def _envs(module: str):
    import importlib

    return importlib.import_module("envs" if module == "__init__" else f"envs.{module}")


def _reset(kind):
    env = _parallel(kind)
    env.reset()
    return env


ENV_ROWS = [
    ("SMACBatch unknown map", lambda: _smac_batch(map_name="4m"), "4m"),
    ("SMACBatch 0 battles", lambda: _smac_batch(n_battles=0), "n_battles=0"),
    ("SMACBatch True battles", lambda: _smac_batch(n_battles=True), "n_battles=True"),
    ("SMACBatch negative seed", lambda: _smac_batch(seed=-1), "seed=-1"),
    ("SMACBatch seed 2**32", lambda: _smac_batch(seed=2**32), "seed=4294967296"),
    ("SMACBatch float seed", lambda: _smac_batch(seed=1.5), "seed=1.5"),
    ("SMACBatch step before reset", lambda: _smac_batch().step(np.zeros((2, 5), np.int64)), "before reset"),
    ("SMACBatch wrong shape", lambda: _reset_batch().step(np.zeros((2, 4), np.int64)), "shape"),
    ("SMACBatch float actions", lambda: _reset_batch().step(np.zeros((2, 5), np.float32)), "dtype"),
    ("SMACBatch action out of range", lambda: _reset_batch().step(np.full((2, 5), 11)), "out of range"),
    ("SMACBatch unavailable action", lambda: _reset_batch().step(np.zeros((2, 5), np.int64)), "unavailable"),
    ("StarCraft2Env float seed", lambda: _sc2_env(seed=1.5), "seed=1.5"),
    ("StarCraft2Env unsupported setting", lambda: _sc2_env(reward_only_positive=False), "default settings"),
    ("StarCraft2Env agent -1", lambda: _sc2_env().get_obs_agent(-1), "agent_id=-1"),
    ("StarCraft2Env agent 5", lambda: _sc2_env().get_avail_agent_actions(5), "agent_id=5"),
    ("StarCraft2Env agent 1.0", lambda: _sc2_env().get_obs_agent(1.0), "agent_id=1.0"),
    ("StarCraft2Env float actions", lambda: _sc2_env().step([1.5] * 5), "not accepted"),
    ("StarCraft2Env too few actions", lambda: _sc2_env().step([1] * 4), "not accepted"),
    (
        "StarCraft2Env step before reset",
        lambda: __import__("envs.smac").smac.StarCraft2Env("2s3z").step([1] * 5),
        "reset",
    ),
    ("SMACParallelEnv step before reset", lambda: _parallel("smac").step({}), "reset"),
    ("SMACParallelEnv missing agent", lambda: _reset("smac").step({"agent_0": 1}), "not accepted"),
    (
        "SMACParallelEnv bad unavailable mode",
        lambda: __import__("envs.smac").smac.SMACParallelEnv("2s3z", unavailable="skip"),
        "skip",
    ),
    ("make_env unknown back end", lambda: __import__("envs.smac").smac.make_env("2s3z", "gpu"), "gpu"),
    ("MatrixGameEnv unknown game", lambda: __import__("envs.matrix").matrix.MatrixGameEnv("chess"), "chess"),
    ("MatrixGameEnv step before reset", lambda: _parallel("matrix").step({"agent_0": 0, "agent_1": 0}), "reset"),
    ("MatrixGameEnv bool action", lambda: _reset("matrix").step({"agent_0": True, "agent_1": 0}), "True"),
    ("MatrixGameEnv list of actions", lambda: _reset("matrix").step([0, 1]), "dict"),
    ("BridgeEnv step before reset", lambda: _parallel("bridge").step({"agent_0": 0, "agent_1": 0}), "reset"),
    ("BridgeEnv action 7", lambda: _reset("bridge").step({"agent_0": 7, "agent_1": 0}), "0..4"),
    ("BridgeEnv float action", lambda: _reset("bridge").step({"agent_0": 1.5, "agent_1": 0}), "integers"),
    ("BridgeCore batch 0", lambda: __import__("envs.bridge").bridge.BridgeCore(0), "batch=0"),
    ("BridgeEnv list of actions", lambda: _reset("bridge").step([0, 0]), "needs a dict of one action for each of"),
    ("SMACBatch ragged actions", lambda: _reset_batch().step([[0, 1], [2]]), "could not be read as an array"),
    (
        "StarCraft2Env actions not a sequence",
        lambda: _sc2_env().step(5),
        "actions 5 are not accepted; accepted: 5 integers",
    ),
    (
        "Bridge dataset unknown",
        lambda: _envs("bridge").load_or_make("expert", 0, "/nonexistent"),
        "'expert'; accepted: optimal, mixed",
    ),
    (
        "Bridge cache not a directory",
        lambda: _envs("bridge").load_or_make("optimal", 0, "/dev/null/cache"),
        "--cache-dir '/dev/null/cache' cannot be written",
    ),
    (
        "matrix 0 plays",
        lambda: _envs("matrix").make_dataset("xor", "a", 0, num_plays=0),
        "num_plays must be positive, got 0",
    ),
    (
        "SMAC agent checkpoint missing",
        lambda: _envs("smac_data").load_agent("/nonexistent/a.pt", "2s3z"),
        "agent checkpoint '/nonexistent/a.pt' does not exist",
    ),
    (
        "SMAC policies missing",
        lambda: _envs("smac_data").policy_manifest("2s3z", "/nonexistent"),
        "no behaviour policies for 2s3z in '/nonexistent/2s3z'",
    ),
    (
        "SMAC dataset seed -1",
        lambda: _envs("smac_data").load_or_make("2s3z", "medium", -1),
        "dataset seed -1 is not accepted",
    ),
    (
        "SMAC dataset 0 episodes",
        lambda: _envs("smac_data").load_or_make("2s3z", "medium", 0, episodes=0),
        "episodes=0 is not accepted; accepted: an integer >= 1",
    ),
    (
        "runs dir not a directory",
        lambda: _envs("__init__").new_run_dir("/dev/null/runs", "x"),
        "--runs-dir '/dev/null/runs' cannot be written",
    ),
]


@pytest.mark.parametrize("call, fragment", [(c, f) for _, c, f in ENV_ROWS], ids=[name for name, _, _ in ENV_ROWS])
def test_envs_api_rejects_bad_arguments(call, fragment):
    with pytest.raises(InputError) as error:
        call()
    assert fragment in str(error.value), str(error.value)


def test_two_runs_of_the_same_name_get_directories_of_their_own(tmp_path):
    from envs import new_run_dir

    first = new_run_dir(str(tmp_path), "run__0__1796000000")
    (tmp_path / first[0] / "summary.json").write_text("{}")
    second = new_run_dir(str(tmp_path), "run__0__1796000000")
    assert first[0] == "run__0__1796000000" and second[0] == "run__0__1796000000-2"
    assert (tmp_path / first[0] / "summary.json").read_text() == "{}" and os.listdir(second[1]) == []
    for k in range(3, 1000):
        (tmp_path / f"run__0__1796000000-{k}").mkdir()
    with pytest.raises(InputError, match="already holds 999 runs named 'run__0__1796000000'"):
        new_run_dir(str(tmp_path), "run__0__1796000000")


# --- every flag's domain, at its edges --------------------------------------------------
# The accepted interval of each real flag (as its error line prints it) and the upper limit of each
# integer flag (the lower is 1), per script: check_args must accept exactly these.
REAL_DOMAINS = {
    "learning_rate": "(0, ∞)",
    "alpha_lr": "(0, ∞)",
    "gamma": "[0, 1]",
    "tau": "(0, 1]",
    "alpha": "[0, ∞)",
    "target_kl": "[0, ∞)",
    "beta_0": "[0, ∞)",
    "beta_decay": "[0, 1]",
    "cql_alpha": "[0, ∞)",
    "weight_clip": "(0, ∞)",
}
COMMON_COUNTS = {
    "num_updates": 10**9,
    "bc_updates": 10**9,
    "batch_size": 2**20,
    "hidden_dim": 8192,
    "eval_interval": 10**9,
}
COUNT_LIMITS = {
    "inspo_matrix": {
        **COMMON_COUNTS,
        "pool_factor": 1024,
        "eval_episodes": 10**6,
        "final_eval_episodes": 10**6,
        "num_plays": 10**8,
    },
    "inspo_bridge": {
        **COMMON_COUNTS,
        "pool_factor": 1024,
        "eval_episodes": 10**6,
        "final_eval_episodes": 10**6,
        "checkpoint_interval": 10**9,
    },
    "inspo_smac": {
        **COMMON_COUNTS,
        "batch_episodes": 4096,
        "rnn_hidden": 4096,
        "eval_episodes": 10**5,
        "final_eval_episodes": 10**5,
        "checkpoint_interval": 10**9,
        "dataset_episodes": 10**6,
        "log_interval": 10**9,
        "critic_probe_episodes": 10**5,
    },
}
SCRIPT_REAL_DOMAINS = {"inspo_smac": {"td_lambda": "[0, 1]"}}


def edge_probes(domain: str) -> list[tuple[float, bool]]:
    """(value, accepted) just inside and just outside each end of an interval such as "(0, 1]"."""
    low, high = domain[1:-1].split(", ")
    probes = [
        (float(low), domain[0] == "["),
        (float(low) - 1e-9, False),
        (float(low) + 1e-9, True),
        (float("nan"), False),
    ]
    if high == "∞":
        return probes + [(1e300, True), (float("inf"), False)]
    return probes + [(float(high), domain[-1] == "]"), (float(high) + 1e-9, False), (float(high) - 1e-9, True)]


@pytest.mark.parametrize("script", list(COUNT_LIMITS))
def test_check_args_accepts_exactly_each_flags_domain(script, tmp_path):
    import importlib

    module = importlib.import_module(script)
    base = (
        dict(runs_dir=str(tmp_path / "runs"), cache_dir=str(tmp_path / "cache"))
        if script != "inspo_matrix"
        else dict(runs_dir=str(tmp_path / "runs"))
    )

    def accepted(**flag) -> tuple[bool, str]:
        try:
            # α + β_0 > 0 whichever is probed
            module.check_args(module.Args(**{**base, "alpha": 0.1, "beta_0": 1.0, **flag}))
            return True, ""
        except InputError as error:
            return False, str(error)

    for name, domain in {**REAL_DOMAINS, **SCRIPT_REAL_DOMAINS.get(script, {})}.items():
        for value, expected in edge_probes(domain):
            ok, message = accepted(**{name: value})
            assert ok == expected, (name, value, message)
            assert ok or message.endswith(f"accepted: a finite number in {domain}"), message
    for name, high in COUNT_LIMITS[script].items():
        for value, expected in ((1, True), (high, True), (0, False), (high + 1, False), (True, False), (2.0, False)):
            ok, message = accepted(**{name: value})
            assert ok == expected, (name, value, message)
            assert ok or message.endswith(f"accepted: an integer in [1, {high}]"), message
    for name in ("seed", "dataset_seed"):
        for value, expected in ((0, True), (2**32 - 1, True), (-1, False), (2**32, False), (1.0, False)):
            ok, message = accepted(**{name: value})
            assert ok == expected and (ok or message.endswith("accepted: an integer in [0, 2**32)")), (
                name,
                value,
                message,
            )


def test_check_number_closes_or_opens_each_end_as_asked():
    from envs import check_number

    for low_open, high_open in ((False, False), (True, False), (False, True), (True, True)):
        for value, inside in ((0, not low_open), (1, not high_open), (0.5, True), (-0.1, False), (1.1, False)):
            try:
                check_number("tau", value, 0, 1, low_open, high_open)
                accepted = True
            except InputError as error:
                accepted = False
                interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
                assert str(error) == f"--tau {value} is not accepted; accepted: a finite number in {interval}"
            assert accepted == inside, (low_open, high_open, value)
