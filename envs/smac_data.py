"""SMAC offline datasets made on the built-in simulator: behaviour agents, rollouts, CFCQL's h5 files.

The paper trains on CFCQL's SMAC datasets (docs/smac_datasets.md): for each map `medium`
(greedy rollouts of a partially trained QMIX), `expert` (greedy rollouts of a converged QMIX),
`medium_replay` (QMIX's ε-greedy training episodes up to medium performance) and `mixed`
(2500 medium + 2500 expert episodes, the same indices of each). Those files need StarCraft II;
this module makes the same sixteen datasets on `envs.smac.SMACBatch` from QMIX agents trained
on the simulator by tools/qmix_smac.py and shipped in envs/smac_policies/<map>/.

  * `QMIXAgent`: PyMARL's RNN agent (obs ‖ last action ‖ agent id → 64 → GRU 64 → Q per action),
    parameters shared by the agents; the trainer and the dataset maker both use it.
  * `rollout`: one episode in each of B battles, ε-greedy over the available actions, recorded in
    CFCQL's per-episode layout.
  * `load_or_make` / `make_dataset`: a dataset generated on first use, written in CFCQL's h5 layout
    atomically into a cache directory with a card (JSON) beside it; `load_h5` reads our files and
    CFCQL's original files the same way, checks them, and trims the padding.

`medium_replay` is an honest stand-in for CFCQL's dumped replay buffer (we did not keep QMIX's
buffer): ε-greedy rollouts of the checkpoints taken during training up to the medium one, each
checkpoint playing as many episodes as the training run collected with it, with the ε it ran
with. Every card says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn

from envs import InputError
from envs.smac import MAPS, RULES_REVISION, SMACBatch, check_map, scripted_actions

DATASETS = ("medium", "medium_replay", "expert", "mixed")
POLICY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "smac_policies")
# CFCQL's h5 layout: key -> (per-time-step shape given the map's sizes, dtype)
H5_KEYS = {
    "state": (lambda s: (s["state_shape"],), np.float32),
    "obs": (lambda s: (s["n_agents"], s["obs_shape"]), np.float32),
    "actions": (lambda s: (s["n_agents"], 1), np.int64),
    "avail_actions": (lambda s: (s["n_agents"], s["n_actions"]), np.int32),
    "probs": (lambda s: (s["n_agents"], s["n_actions"]), np.float32),
    "reward": (lambda s: (1,), np.float32),
    "terminated": (lambda s: (1,), np.uint8),
    "filled": (lambda s: (1,), np.int64),
}
# OG-MARL's cards of CFCQL's files: return mean, std, mean episode length
CFCQL_CARDS = {
    ("2s3z", "medium"): (12.76, 3.32, 50.8),
    ("2s3z", "medium_replay"): (7.94, 3.41, 50.7),
    ("2s3z", "expert"): (19.97, 0.37, 42.4),
    ("2s3z", "mixed"): (16.39, 4.33, 46.5),
    ("3s_vs_5z", "medium"): (20.86, 3.47, 234.9),
    ("3s_vs_5z", "medium_replay"): (18.85, 4.20, 216.5),
    ("3s_vs_5z", "expert"): (21.19, 0.70, 120.1),
    ("3s_vs_5z", "mixed"): (21.04, 2.51, 177.7),
    ("5m_vs_6m", "medium"): (12.05, 4.36, 27.1),
    ("5m_vs_6m", "medium_replay"): (9.02, 2.59, 23.7),
    ("5m_vs_6m", "expert"): (18.17, 3.79, 25.7),
    ("5m_vs_6m", "mixed"): (15.11, 5.11, 26.3),
    ("6h_vs_8z", "medium"): (16.63, 3.03, 41.4),
    ("6h_vs_8z", "medium_replay"): (12.97, 2.22, 36.5),
    ("6h_vs_8z", "expert"): (19.01, 2.11, 45.6),
    ("6h_vs_8z", "mixed"): (17.81, 2.88, 43.5),
}
# how near a dataset's statistics must come to CFCQL's card (the fidelity report's targets): the return mean within
# 10 %, its sd within a factor 2, the mean episode length within 15 %
CARD_TOLERANCE = {"return": 0.10, "sd_factor": 2.0, "length": 0.15}


def card_misses(card: tuple, mean_return: float, length: float, sd: float | None = None) -> dict:
    """How far a dataset's (or a policy's) statistics are from a CFCQL card (mean, sd, length), each in units of
    CARD_TOLERANCE: at most 1 is within the target. An unmeasured sd (None) misses by 0."""
    card_mean, card_sd, card_length = card
    return {
        "return": abs(mean_return - card_mean) / (CARD_TOLERANCE["return"] * abs(card_mean)),
        "sd": 0.0 if sd is None else abs(np.log(max(sd, 1e-6) / card_sd)) / np.log(CARD_TOLERANCE["sd_factor"]),
        "length": abs(length - card_length) / (CARD_TOLERANCE["length"] * card_length),
    }


def cfcql_episodes(map_name: str, name: str) -> int:
    """Episodes in CFCQL's file: 5000, except 2s3z medium_replay's 1976."""
    return 1976 if (map_name, name) == ("2s3z", "medium_replay") else 5000


def map_sizes(map_name: str) -> dict:
    """SMAC's env_info of a map (state_shape, obs_shape, n_actions, n_agents, episode_limit) and
    the widths of the state's ally and enemy rows."""
    battles = SMACBatch(map_name, 1)
    return {**battles.env_info(), "ally_state_dim": battles.ally_state_dim, "enemy_state_dim": battles.enemy_state_dim}


# ---------------------------------------------------------------------------------------
# The behaviour agent (PyMARL's RNN agent, shared parameters)
# ---------------------------------------------------------------------------------------
class QMIXAgent(nn.Module):
    """Q^i(τ^i, ·) for every agent with one set of weights: input obs ‖ one-hot last action ‖ one-hot id."""

    def __init__(self, obs_dim: int, n_agents: int, n_actions: int, hidden: int = 64):
        super().__init__()
        self.n_agents, self.n_actions = n_agents, n_actions
        self.fc1 = nn.Linear(obs_dim + n_actions + n_agents, hidden)
        self.rnn = nn.GRU(hidden, hidden, batch_first=True)  # one fused kernel over a whole episode
        self.fc2 = nn.Linear(hidden, n_actions)

    def inputs(self, obs: torch.Tensor, last_actions: torch.Tensor) -> torch.Tensor:
        """[..., T, nA, obs] and last actions [..., T, nA] (−1: none yet) -> network inputs."""
        last = (
            torch.nn.functional.one_hot(last_actions.clamp(min=0), self.n_actions).float()
            * (last_actions >= 0)[..., None]
        )
        ids = torch.eye(self.n_agents, device=obs.device).expand(*obs.shape[:-1], self.n_agents)
        return torch.cat([obs, last, ids], -1)

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor | None = None):
        """inputs [E, T, nA, in] -> (Q [E, T, nA, A], hidden [E, nA, H]); the GRU runs along T."""
        E, T, nA, _ = inputs.shape
        x = torch.relu(self.fc1(inputs)).transpose(1, 2).reshape(E * nA, T, -1)
        h0 = None if hidden is None else hidden.reshape(1, E * nA, -1)
        out, h = self.rnn(x, h0)
        q = self.fc2(out).reshape(E, nA, T, -1).transpose(1, 2)
        return q, h.reshape(E, nA, -1)

    def config(self) -> dict:
        return {
            "obs_dim": self.fc1.in_features - self.n_actions - self.n_agents,
            "n_agents": self.n_agents,
            "n_actions": self.n_actions,
            "hidden": self.fc2.in_features,
        }


def load_agent(path: str, map_name: str, device="cpu") -> QMIXAgent:
    """A shipped or trained agent checkpoint ({'config', 'state_dict'}), checked against the map."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        agent = QMIXAgent(**saved["config"])
        agent.load_state_dict(saved["state_dict"])
    except FileNotFoundError:
        raise InputError(f"agent checkpoint {path!r} does not exist") from None
    except Exception as error:
        raise InputError(f"{path!r} is not a QMIX agent checkpoint ({type(error).__name__}: {error})") from None
    sizes = map_sizes(map_name)
    want = {"obs_dim": sizes["obs_shape"], "n_agents": sizes["n_agents"], "n_actions": sizes["n_actions"]}
    got = {k: saved["config"][k] for k in want}
    if got != want:
        raise InputError(f"agent checkpoint {path!r} has sizes {got}, map {map_name} needs {want}")
    return agent.to(device).eval()


def save_agent(agent: QMIXAgent, path: str) -> None:
    """Agent weights alone (tens of kB), loadable with torch.load(weights_only=True); atomic."""
    torch.save(
        {"config": agent.config(), "state_dict": {k: v.detach().cpu() for k, v in agent.state_dict().items()}},
        path + ".tmp",
    )
    os.replace(path + ".tmp", path)


def epsilon_greedy(q: np.ndarray, avail: np.ndarray, epsilon, rng: np.random.Generator) -> np.ndarray:
    """argmax over the available actions; with probability ε (per battle, or one number) a uniform available action."""
    return explore(np.where(avail == 1, q, -np.inf).argmax(-1), avail, epsilon, rng)


def explore(greedy: np.ndarray, avail: np.ndarray, epsilon, rng: np.random.Generator) -> np.ndarray:
    """The actions [B, nA], each replaced with probability ε (per battle, or one number) by a uniform
    available action."""
    if np.all(np.asarray(epsilon) == 0):
        return greedy
    uniform = (rng.random(avail.shape) * avail).argmax(-1)  # the largest of iid uniforms: a uniform pick
    replaced = rng.random(greedy.shape) < np.broadcast_to(np.asarray(epsilon, dtype=float).reshape(-1, 1), greedy.shape)
    return np.where(replaced, uniform, greedy)


@torch.no_grad()
def rollout(
    battles: SMACBatch,
    agent: QMIXAgent | None,
    epsilon,
    rng: np.random.Generator,
    device="cpu",
    scripted: str | None = None,
) -> dict:
    """One episode in each battle (reset first), recorded in CFCQL's layout: the agent
    ε-greedy, or a scripted team of envs.smac (`scripted`, with agent None) with the same ε.

    Arrays [B, T, ...] with T = episode_limit + 1: time step t < L holds the obs, state and masks
    before action t, the action, reward r_t and `terminated` (1 at t = L−1, timeouts included);
    time step L holds the terminal obs, state and masks and the action the agent picks there;
    `filled` is 1 for t ≤ L; the rest is zeros. Also `won`, `timeout` and `length` [B].
    """
    B, nA, T = battles.n_battles, battles.n_agents, battles.episode_limit + 1
    obs, state, avail = battles.reset()
    out = {
        "state": np.zeros((B, T, battles.state_dim), np.float32),
        "obs": np.zeros((B, T, nA, battles.obs_dim), np.float32),
        "actions": np.zeros((B, T, nA), np.int64),
        "avail_actions": np.zeros((B, T, nA, battles.n_actions), np.int32),
        "reward": np.zeros((B, T), np.float32),
        "terminated": np.zeros((B, T), np.uint8),
        "filled": np.zeros((B, T), np.int64),
    }
    won, timeout, length = np.zeros(B, bool), np.zeros(B, bool), np.full(B, -1, np.int64)
    last = torch.full((B, 1, nA), -1, dtype=torch.long, device=device)
    hidden = None
    for t in range(T):
        running = length < 0
        if scripted is None:
            q, hidden = agent(agent.inputs(torch.as_tensor(obs, device=device)[:, None], last), hidden)
            actions = epsilon_greedy(q[:, 0].cpu().numpy(), avail, epsilon, rng)
        else:
            actions = explore(scripted_actions(battles, scripted, rng), avail, epsilon, rng)
        recording = running | (length == t)  # the battles still playing, and those at their terminal step
        for key, value in (("state", state), ("obs", obs), ("avail_actions", avail), ("actions", actions)):
            out[key][recording, t] = value[recording]
        out["filled"][recording, t] = 1
        if not running.any():
            break
        obs, state, avail, reward, terminated, info = battles.step(actions)
        out["reward"][running, t] = reward[running]
        ended = running & terminated
        out["terminated"][ended, t] = 1
        won |= ended & info["battle_won"]
        timeout |= ended & info["timeout"]
        length[ended] = t + 1
        last = torch.as_tensor(actions, device=device)[:, None]
    return {**out, "won": won, "timeout": timeout, "length": length}


# ---------------------------------------------------------------------------------------
# Statistics of a dataset in CFCQL's layout (a card's numbers come from the arrays)
# ---------------------------------------------------------------------------------------
def episode_stats(arrays: dict, sizes: dict) -> dict:
    """Per-episode return, length L and win, read from the arrays alone: a win is every enemy's
    health 0 and some ally's health > 0 in the state of the terminal time step L."""
    filled = arrays["filled"].reshape(len(arrays["filled"]), -1)
    length = filled.sum(1).astype(np.int64) - 1
    returns = (arrays["reward"].reshape(filled.shape) * filled).sum(1, dtype=np.float64)
    final_state = arrays["state"][np.arange(len(length)), length]
    nA, nE = sizes["n_agents"], sizes["n_actions"] - 6
    ally_dim, enemy_dim = sizes["ally_state_dim"], sizes["enemy_state_dim"]
    ally_health = final_state[:, 0 : nA * ally_dim : ally_dim]
    enemy_health = final_state[:, nA * ally_dim : nA * ally_dim + nE * enemy_dim : enemy_dim]
    won = (enemy_health <= 0).all(1) & (ally_health > 0).any(1)
    # episodes with identical state sequences (CFCQL's files hold each greedy episode 8 times; ours all differ)
    distinct = len({hashlib.blake2b(episode.tobytes(), digest_size=16).digest() for episode in arrays["state"]})
    return {"return": returns, "length": length, "won": won, "distinct_episodes": distinct}


def summarise(stats: dict) -> dict:
    """The card's numbers: episodes, transitions, return mean/std/min/max, win rate, mean length."""
    r = stats["return"]
    return {
        "episodes": int(len(r)),
        "transitions": int(stats["length"].sum()),
        "return_mean": float(r.mean()),
        "return_std": float(r.std()),
        "return_min": float(r.min()),
        "return_max": float(r.max()),
        "win_rate": float(stats["won"].mean()),
        "mean_episode_length": float(stats["length"].mean()),
        "distinct_episodes": int(stats["distinct_episodes"]),
    }


# ---------------------------------------------------------------------------------------
# CFCQL's h5 layout: reading and checking
# ---------------------------------------------------------------------------------------
def _read(path: str, keys, rows=slice(None)) -> dict:
    """Some keys of an h5 file, all episodes or a block of them."""
    import h5py

    with h5py.File(path, "r") as f:
        return {k: f[k][rows] for k in keys}


def check_arrays(arrays: dict, sizes: dict, where: str) -> None:
    """Every array finite; every taken action available; filled a prefix of each episode."""
    for key in ("state", "obs", "reward"):
        if not np.isfinite(arrays[key]).all():
            raise InputError(f"{where}: {key!r} holds NaN or inf")
    filled = arrays["filled"].reshape(len(arrays["filled"]), -1)
    if len(filled) == 0 or (filled.sum(1) < 2).any():
        raise InputError(
            f"{where}: every episode needs at least one filled transition (filled has "
            f"{filled.sum(1).min() if len(filled) else 0})"
        )
    if (np.diff(filled, axis=1) > 0).any():
        raise InputError(f"{where}: 'filled' must be a prefix of ones in every episode")
    actions = arrays["actions"].reshape(filled.shape + (sizes["n_agents"],))
    if actions.min() < 0 or actions.max() >= sizes["n_actions"]:
        raise InputError(f"{where}: actions outside 0..{sizes['n_actions'] - 1}")
    taken = np.take_along_axis(arrays["avail_actions"], actions[..., None], -1)[..., 0]
    bad = (taken == 0) & (filled[..., None] == 1)
    bad[np.arange(len(filled)), filled.sum(1) - 1] = False  # the terminal step's dummy action is never learned from
    if bad.any():
        e, t, i = np.argwhere(bad)[0]
        raise InputError(
            f"{where}: episode {e}, step {t}: agent {i}'s action {int(actions[e, t, i])} is marked unavailable"
        )


def load_h5(path: str, map_name: str, episodes: np.ndarray | None = None) -> dict:
    """A dataset in CFCQL's h5 layout (ours or CFCQL's originals), checked against the map and
    trimmed to its longest episode: state [E,T,S], obs [E,T,N,O], actions [E,T,N] int64,
    avail_actions [E,T,N,A], reward [E,T], terminated [E,T], filled [E,T] (T = longest L + 1)."""
    import h5py

    sizes = map_sizes(map_name)
    T = sizes["episode_limit"] + 1
    try:
        f = h5py.File(path, "r")
    except FileNotFoundError:
        raise InputError(f"dataset file {path!r} does not exist") from None
    except OSError as error:
        raise InputError(f"{path!r} is not a readable h5 file ({error})") from None
    with f:
        missing = [k for k in H5_KEYS if k != "probs" and k not in f]
        if missing:
            raise InputError(f"{path!r} lacks the keys {missing}; CFCQL's layout has {list(H5_KEYS)}")
        n = f["filled"].shape[0]
        for key, (shape, dtype) in H5_KEYS.items():
            if key not in f:
                continue
            want = (n, T) + shape(sizes)
            if f[key].shape != want:
                raise InputError(f"{path!r}: {key!r} has shape {f[key].shape}, map {map_name} needs {want}")
            if np.dtype(f[key].dtype).kind != np.dtype(dtype).kind:
                raise InputError(f"{path!r}: {key!r} has dtype {f[key].dtype}, CFCQL's layout has {np.dtype(dtype)}")
        index = np.arange(n) if episodes is None else np.sort(np.asarray(episodes))
        if len(index) and (index[0] < 0 or index[-1] >= n):
            raise InputError(f"{path!r} holds {n} episodes; episode indices must lie in 0..{n - 1}")
        try:
            filled = f["filled"][index][..., 0].astype(np.int64)
            T_used = int(filled.sum(1).max()) if len(filled) else 1
            out = {
                key: f[key][index, :T_used]
                for key in ("state", "obs", "actions", "avail_actions", "reward", "terminated")
            }
        except (OSError, KeyError, ValueError) as error:
            raise InputError(f"{path!r} is truncated or corrupt ({error})") from None
    arrays = {
        "state": out["state"].astype(np.float32, copy=False),
        "obs": out["obs"].astype(np.float32, copy=False),
        "actions": out["actions"][..., 0].astype(np.int64),
        "avail_actions": out["avail_actions"].astype(np.int32, copy=False),
        "reward": out["reward"][..., 0].astype(np.float32),
        "terminated": out["terminated"][..., 0].astype(np.uint8),
        "filled": filled[:, :T_used],
    }
    check_arrays(arrays, sizes, repr(path))
    return arrays


# ---------------------------------------------------------------------------------------
# Making datasets: rollouts of the shipped policies, written in CFCQL's layout
# ---------------------------------------------------------------------------------------
def policy_manifest(map_name: str, policy_dir: str = POLICY_DIR) -> dict:
    path = os.path.join(policy_dir, map_name, "manifest.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise InputError(
            f"no behaviour policies for {map_name} in {os.path.dirname(path)!r} "
            "(train them with tools/qmix_smac.py and ship them with tools/ship_policies.py)"
        ) from None


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def policy_fingerprint(map_name: str, policy_dir: str = POLICY_DIR) -> str:
    """sha256 of a map's shipped manifest and weights: a cached dataset made from other policies is rebuilt."""
    digest = hashlib.sha256()
    folder = os.path.join(policy_dir, map_name)
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        with open(os.path.join(folder, name), "rb") as f:
            digest.update(name.encode() + f.read())
    return digest.hexdigest()


def code_version() -> str:
    """The git commit of this checkout (with '+dirty' for uncommitted changes), or 'unknown'."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "envs", "tools"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        return (commit + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class H5Writer:
    """Episodes appended in CFCQL's layout to a new h5 file (lzf-compressed chunks of one episode)."""

    def __init__(self, path: str, n: int, sizes: dict):
        import h5py

        self.file = h5py.File(path, "w")
        T = sizes["episode_limit"] + 1
        # probs: never written, all zeros as in CFCQL's
        self.sets = {
            key: self.file.create_dataset(
                key, (n, T) + shape(sizes), dtype=dtype, chunks=(1, T) + shape(sizes), compression="lzf", fillvalue=0
            )
            for key, (shape, dtype) in H5_KEYS.items()
        }
        self.next = 0

    def write(self, arrays: dict, positions: np.ndarray | None = None) -> None:
        """Episodes at the next rows, or at the given (distinct) row positions."""
        n = len(arrays["filled"])
        if positions is not None:  # h5py writes a list of rows in increasing order
            order = np.argsort(positions)
            arrays, rows = {k: v[order] for k, v in arrays.items()}, list(np.asarray(positions)[order])
        else:
            rows = slice(self.next, self.next + n)
        self.sets["state"][rows] = arrays["state"]
        self.sets["obs"][rows] = arrays["obs"]
        self.sets["actions"][rows] = arrays["actions"][..., None]
        self.sets["avail_actions"][rows] = arrays["avail_actions"]
        for key in ("reward", "terminated", "filled"):
            self.sets[key][rows] = arrays[key][..., None]
        self.next += n

    def close(self) -> None:
        self.file.close()


def _chunks(total: int, size: int):
    for start in range(0, total, size):
        yield start, min(size, total - start)


def _rollouts(map_name: str, policy: dict, policy_path: str, n: int, epsilon: float, seed: int, chunk: int):
    """n episodes of one shipped policy (a QMIX agent {"file"}, or a scripted team {"scripted"}) in
    chunks of battles; battle k of the dataset uses simulator seed seed + k. Always on the CPU: a GPU's
    GRU rounds differently, near-ties of the greedy argmax flip and the battles diverge, so the same
    seed would give other episodes (seen on an H200, tests/test_cuda.py)."""
    agent = None if "scripted" in policy else load_agent(os.path.join(policy_path, policy["file"]), map_name)
    rng = np.random.default_rng(seed)
    for start, size in _chunks(n, chunk):
        battles = SMACBatch(map_name, size, seed=seed + start, auto_reset=False)
        episodes = rollout(battles, agent, epsilon, rng, scripted=policy.get("scripted"))
        yield {k: v for k, v in episodes.items() if k not in ("won", "timeout", "length")}


def make_dataset(
    map_name: str,
    name: str,
    seed: int,
    path: str,
    episodes: int | None = None,
    chunk: int = 1000,
    policy_dir: str = POLICY_DIR,
    cache_dir: str | None = None,
) -> dict:
    """Generate one dataset into `path` (CFCQL's h5 layout); returns its card (without the file's checksum).

    medium / expert: greedy rollouts (ε = 0) of the shipped medium / expert agent, as CFCQL's
    `runner.run(test_mode=True)`. medium_replay: each replay checkpoint plays its share of the
    episodes ε-greedily with its own ε, then the episodes are shuffled (CFCQL dumped its buffer in
    random order). mixed: 2500 sorted random indices, the same indices of medium and of expert,
    [medium; expert] (CFCQL's tools/mixed.py), read from the cached medium and expert files.
    """
    if name not in DATASETS:
        raise InputError(f"unknown SMAC dataset {name!r}; accepted: {', '.join(DATASETS)}")
    sizes = map_sizes(map_name)
    manifest = policy_manifest(map_name, policy_dir)
    if manifest.get("variety", False) != MAPS[map_name].variety:
        raise InputError(
            f"the {map_name} policies in {policy_dir!r} were trained with variety={manifest.get('variety', False)}, "
            f"but the map plays with variety={MAPS[map_name].variety} (envs/smac.py, MAPS): retrain and ship them"
        )
    policy_path = os.path.join(policy_dir, map_name)
    base_seed = 10_000_000 * (seed + 1) + 1_000_000 * DATASETS.index(name)  # never a training or test battle's seed
    n = episodes or cfcql_episodes(map_name, name)
    if name == "mixed" and n % 2:
        raise InputError(
            f"a mixed dataset takes half its episodes from medium and half from expert: episodes={n} must be even"
        )
    writer = H5Writer(path, n, sizes)
    try:
        if name in ("medium", "expert"):
            checkpoints = [manifest[name]]
            # ε = 0 as CFCQL's test-mode runner, except where the manifest gives a rollout_epsilon: a scripted team
            # (3s_vs_5z's
            # kite) is deterministic, and greedily it would play one and the same episode 5000 times
            # (docs/smac_datasets.md)
            epsilon = manifest[name].get("rollout_epsilon", 0.0)
            for arrays in _rollouts(map_name, manifest[name], policy_path, n, epsilon, base_seed, chunk):
                writer.write(arrays)
        elif name == "medium_replay":
            replay = manifest["replay"]
            total = sum(c["episodes"] for c in replay)
            counts = np.floor(np.array([c["episodes"] for c in replay]) * n / total).astype(int)
            counts[-1] += n - counts.sum()  # the shares of the training run, scaled to n episodes
            checkpoints = [{**c, "dataset_episodes": int(k)} for c, k in zip(replay, counts)]
            # CFCQL's buffer was dumped in random order: episode j of the rollouts goes to row order[j]
            order, done = np.random.default_rng(base_seed).permutation(n), 0
            for i, (c, k) in enumerate(zip(replay, counts)):
                parts = (
                    _rollouts(map_name, c, policy_path, int(k), c["epsilon"], base_seed + 100_000 * i, chunk)
                    if k > 0
                    else ()
                )
                for part in parts:
                    size = len(part["filled"])
                    writer.write(part, order[done : done + size])
                    done += size
        else:  # mixed: the same sorted random indices of medium and expert, [medium; expert] (CFCQL's tools/mixed.py)
            index = np.sort(np.random.default_rng(base_seed).choice(n, n // 2, replace=False))
            checkpoints = [manifest["medium"], manifest["expert"]]
            for part in ("medium", "expert"):
                source, _ = load_or_make(map_name, part, seed, cache_dir, episodes=episodes, policy_dir=policy_dir)
                for start, size in _chunks(n, chunk):  # whole blocks read in order, then the chosen rows
                    block = _read(source, list(H5_KEYS), slice(start, start + size))
                    pick = index[(index >= start) & (index < start + size)] - start
                    writer.write(
                        {
                            k: v[pick][..., 0] if k in ("actions", "reward", "terminated", "filled") else v[pick]
                            for k, v in block.items()
                            if k != "probs"
                        }
                    )
    finally:
        writer.close()
    return {
        "map": map_name,
        "dataset": name,
        "seed": seed,
        "episodes_requested": n,
        "checkpoints": checkpoints,
        "policy_dir": os.path.relpath(policy_path, os.path.dirname(POLICY_DIR))
        if policy_dir == POLICY_DIR
        else policy_path,
        "simulator_seeds": f"battle k uses seed {base_seed} + k (+100000 per replay checkpoint)",
        "code_version": code_version(),
    }


def default_cache_dir() -> str:
    """$INSPO_CACHE, else the user's cache folder ($XDG_CACHE_HOME or ~/.cache)/inspo."""
    return os.environ.get("INSPO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "inspo"
    )


def dataset_path(map_name: str, name: str, seed: int, cache_dir: str, episodes: int | None = None) -> str:
    suffix = f"_seed{seed}" + (f"_n{episodes}" if episodes else "")
    return os.path.join(cache_dir, "smac", f"{map_name}_{name}{suffix}.h5")


def load_or_make(
    map_name: str,
    name: str,
    seed: int = 0,
    cache_dir: str | None = None,
    episodes: int | None = None,
    policy_dir: str = POLICY_DIR,
) -> tuple[str, dict]:
    """(path, card) of a generated dataset: from the cache when its file matches its card's
    checksum, else generated now and written atomically (a temporary name, then renamed; the
    card last). A truncated or corrupt cache file is rebuilt, never trusted."""
    check_map(map_name)
    if name not in DATASETS:
        raise InputError(f"unknown SMAC dataset {name!r}; accepted: {', '.join(DATASETS)}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"dataset seed {seed!r} is not accepted; accepted: an integer >= 0")
    if episodes is not None and (not isinstance(episodes, (int, np.integer)) or episodes < 1):
        raise InputError(f"episodes={episodes!r} is not accepted; accepted: an integer >= 1")
    cache_dir = cache_dir or default_cache_dir()
    path = dataset_path(map_name, name, seed, cache_dir, episodes)
    card_path = path[:-3] + ".json"
    if os.path.exists(path) or os.path.exists(card_path):
        try:
            with open(card_path) as f:
                card = json.load(f)
            if card["policy_sha256"] != policy_fingerprint(map_name, policy_dir):
                reason = "the shipped behaviour policies changed since it was made"
            elif (card.get("variety", False), card.get("rules_revision", 1)) != (
                MAPS[map_name].variety,
                RULES_REVISION,
            ):
                reason = "the simulator's rules for this map changed since it was made"
            elif os.path.getsize(path) == card["file_bytes"] and _sha256(path) == card["sha256"]:
                return path, card
            else:
                reason = "its checksum does not match its card"
        except (OSError, ValueError, KeyError) as error:
            reason = f"{type(error).__name__}: {error}"
        print(f"warning: dataset cache {path!r} cannot be used ({reason}); rebuilding it")
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=os.path.dirname(path))
        os.close(handle)
    except OSError as error:
        raise InputError(
            f"the dataset cache {os.path.dirname(path)!r} cannot be written ({error.strerror}); "
            "give a writable --cache-dir or set INSPO_CACHE"
        ) from None
    try:
        start = time.time()
        card = make_dataset(map_name, name, seed, tmp, episodes, policy_dir=policy_dir, cache_dir=cache_dir)
        card.update(summarise(episode_stats(_read(tmp, ("state", "reward", "filled")), map_sizes(map_name))))
        card["generation_time_s"] = time.time() - start
        card["how"] = HOW[name]
        for c in card["checkpoints"]:
            if "scripted" in c:  # a scripted expert (tools/ship_policies.py --expert-scripted)
                card["how"] = card["how"].replace(
                    "QMIX checkpoint", f"scripted team ({c['scripted']}, envs.smac.scripted_actions)"
                )
            if c.get("rollout_epsilon"):
                card["how"] = card["how"].replace(
                    "greedy rollouts (ε = 0)", f"ε-greedy rollouts (ε = {c['rollout_epsilon']})"
                )
        card["file_bytes"], card["sha256"] = os.path.getsize(tmp), _sha256(tmp)
        card["policy_sha256"] = policy_fingerprint(map_name, policy_dir)
        card["variety"] = MAPS[map_name].variety  # the simulator's rules it was played with (envs.smac.SMACBatch)
        card["rules_revision"] = RULES_REVISION
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    with open(card_path + ".tmp", "w") as f:
        json.dump(card, f, indent=1)
    os.replace(card_path + ".tmp", card_path)
    return path, card


HOW = {
    "medium": "greedy rollouts (ε = 0) of the shipped medium QMIX checkpoint on the built-in simulator",
    "expert": "greedy rollouts (ε = 0) of the shipped expert QMIX checkpoint on the built-in simulator",
    "medium_replay": (
        "a stand-in for CFCQL's dumped replay buffer: ε-greedy rollouts of the QMIX checkpoints taken during "
        "training up to the medium one, each playing the share of episodes the training run collected with it, "
        "with the ε it ran with, then shuffled"
    ),
    "mixed": "the same sorted random half of the indices of medium and of expert, [medium; expert] "
    "(CFCQL's tools/mixed.py)",
}


def format_card(card: dict) -> str:
    return (
        f"dataset {card['map']} {card['dataset']}: {card['episodes']} episodes, {card['transitions']} transitions, "
        f"return {card['return_mean']:.2f} ± {card['return_std']:.2f}, win rate {card['win_rate']:.2f}, "
        f"mean length {card['mean_episode_length']:.1f}"
        + (f", {card['distinct_episodes']} distinct" if "distinct_episodes" in card else "")
    )


def main() -> None:
    """`python -m envs.smac_data --map 2s3z --dataset mixed`: generate (or find in the cache) a dataset, print its
    card."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--map", default="3s_vs_5z", help=f"one of {', '.join(MAPS)}")
    parser.add_argument("--dataset", default="mixed", help=f"one of {', '.join(DATASETS)}")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (>= 0)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes (default: CFCQL's count)")
    parser.add_argument("--cache-dir", default=None, help="default: $INSPO_CACHE or ~/.cache/inspo")
    args = parser.parse_args()
    try:
        path, card = load_or_make(args.map, args.dataset, args.seed, args.cache_dir, args.episodes)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(format_card(card))
    print(f"dataset: {path}")


if __name__ == "__main__":
    main()
