"""Bridge (AlberDICE's variant, the one the InSPO paper used): rules, datasets and a PettingZoo env.

The rules are docs/bridge.md's; section numbers below refer to it. A 3 x 6 grid
with a one-lane bridge; agent 0 starts at (1,2) and must reach (2,5), agent 1 starts at (1,3)
and must reach (0,0), so the two start face to face on the bridge and one must yield.

`BridgeCore` steps B episodes at once with numpy arrays (evaluation, data generation);
`BridgeEnv` is the single-episode PettingZoo ParallelEnv over it. All randomness comes from
generators the caller seeds; no global RNG is touched.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs import InputError
from envs.alberdice import load_buffer, transitions_from_buffer

ROWS, COLS = 3, 6
WALLS = {(0, 2), (0, 3), (2, 2), (2, 3)}
START = np.array([[1, 2], [1, 3]])  # §1, start_adjacent=True
GOAL = np.array([[2, 5], [0, 0]])
MOVES = np.array([[0, 0], [-1, 0], [1, 0], [0, 1], [0, -1]])  # §2: stay, up, down, right, left
N_AGENTS, N_ACTIONS, STATE_DIM = 2, 5, 8
TRAIN_HORIZON, DATA_HORIZON = 20, 50  # §5: evaluated with 20, collected with 50
OPTIMUM = -1.235453  # §7: the true optimum (the behaviour policy of the optimal data scores −1.2616)
FREE = np.ones((ROWS, COLS), dtype=bool)
for _r, _c in WALLS:
    FREE[_r, _c] = False


def observe(pos: np.ndarray) -> np.ndarray:
    """§6: the state [r0, c0, 2, 5, r1, c1, 0, 0] (raw coordinates), also each agent's observation."""
    goals = np.broadcast_to(GOAL, pos.shape)
    return np.concatenate([pos[:, 0], goals[:, 0], pos[:, 1], goals[:, 1]], axis=-1).astype(np.float32)


class BridgeCore:
    """B Bridge episodes stepped together (§3-§5). Arrays: pos [B,2,2], done [B,2], t [B]."""

    def __init__(self, batch: int, horizon: int = TRAIN_HORIZON):
        if batch <= 0 or horizon <= 0:
            raise InputError(f"BridgeCore needs batch >= 1 and horizon >= 1, got batch={batch}, horizon={horizon}")
        self.batch, self.horizon = batch, horizon
        self.reset()

    def reset(self) -> np.ndarray:
        self.pos = np.broadcast_to(START, (self.batch, N_AGENTS, 2)).copy()
        self.done = np.zeros((self.batch, N_AGENTS), dtype=bool)
        self.t = np.zeros(self.batch, dtype=np.int64)
        return observe(self.pos)

    def step(self, actions: np.ndarray):
        """One simultaneous step for every episode; returns (state, team reward, terminated [B])."""
        actions = np.asarray(actions)
        if actions.shape != (self.batch, N_AGENTS) or not np.issubdtype(actions.dtype, np.integer):
            raise InputError(
                f"actions must be integers of shape {(self.batch, N_AGENTS)}, got {actions.dtype} {actions.shape}"
            )
        if ((actions < 0) | (actions >= N_ACTIONS)).any():
            raise InputError(
                f"actions must be in 0..{N_ACTIONS - 1}, got {actions[(actions < 0) | (actions >= N_ACTIONS)][0]}"
            )
        new_pos = resolve_moves(self.pos, self.done, actions)
        done_prev = self.done
        distance = np.linalg.norm(GOAL[None] - new_pos, axis=-1)
        reward = np.where(done_prev, 0.0, -0.1 * distance).sum(-1) / N_AGENTS  # §4: mean, denominator 2
        self.t += 1
        self.done = done_prev | (new_pos == GOAL[None]).all(-1) | (self.t >= self.horizon)[:, None]
        terminated = self.done.all(-1)
        reward = np.where(terminated, 0.0, reward)  # §4: the step that ends the episode pays 0
        self.pos = new_pos
        return observe(self.pos), reward.astype(np.float32), terminated


def resolve_moves(pos: np.ndarray, done: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """§3 for two agents, vectorised over episodes: agent 0 resolved first, then agent 1.

    Done agents stay and are ghosts; a move off the grid or into a wall stays; entering one's own
    goal always succeeds; agent 0 wins a contested empty cell; swaps block both; following works.
    """
    actions = np.where(done, 0, actions)
    prop = pos + MOVES[actions]
    inside = (prop[..., 0] >= 0) & (prop[..., 0] < ROWS) & (prop[..., 1] >= 0) & (prop[..., 1] < COLS)
    valid = inside & FREE[prop[..., 0].clip(0, ROWS - 1), prop[..., 1].clip(0, COLS - 1)]
    prop = np.where(valid[..., None], prop, pos)
    invalid = ~valid
    stay = actions == 0
    free = done | (prop == GOAL[None]).all(-1)  # moves without any check
    same = lambda a, b: (a == b).all(-1)  # noqa: E731
    p0, p1, q0, q1 = pos[:, 0], pos[:, 1], prop[:, 0], prop[:, 1]

    # Agent 0 (agent 1 unresolved unless its move was invalid, in which case it stays at p1).
    checked0 = ~invalid[:, 0] & ~free[:, 0] & ~stay[:, 0] & ~done[:, 1]
    blocked0 = checked0 & (
        ((invalid[:, 1] | stay[:, 1]) & same(p1, q0))  # 1 stays in the cell 0 wants
        | (~invalid[:, 1] & ~stay[:, 1] & same(q0, p1) & same(q1, p0))  # swap: both blocked
    )
    contested = checked0 & ~invalid[:, 1] & ~stay[:, 1] & same(q1, q0) & ~same(q0, p1)  # 0 wins, 1 stays
    swap = checked0 & ~invalid[:, 1] & ~stay[:, 1] & same(q0, p1) & same(q1, p0)
    final0 = np.where(blocked0[:, None], p0, q0)

    # Agent 1: blocked by a swap or a lost contest above, else only by agent 0's final cell.
    checked1 = ~invalid[:, 1] & ~free[:, 1] & ~stay[:, 1] & ~done[:, 0]
    blocked1 = contested | swap | (checked1 & same(final0, q1))
    final1 = np.where(blocked1[:, None], p1, q1)
    return np.stack([final0, final1], axis=1)


# ----------------------------------------------------------------------------------------
# Behaviour policies (§7, §8) and datasets
# ----------------------------------------------------------------------------------------
def _distances(goal) -> np.ndarray:
    """Breadth-first shortest-path lengths to `goal` over free cells."""
    dist = np.full((ROWS, COLS), 10**6)
    dist[tuple(goal)] = 0
    frontier = [tuple(goal)]
    while frontier:
        nxt = []
        for r, c in frontier:
            for dr, dc in MOVES[1:]:
                rr, cc = r + dr, c + dc
                if 0 <= rr < ROWS and 0 <= cc < COLS and FREE[rr, cc] and dist[rr, cc] > dist[r, c] + 1:
                    dist[rr, cc] = dist[r, c] + 1
                    nxt.append((rr, cc))
        frontier = nxt
    return dist


DIST = np.stack([_distances(g) for g in GOAL])  # [agent, row, col]
# §7: a done agent's recorded action (stay/down/right at (2,5); stay/up/left at (0,0))
NO_MOVE = {
    0: (0, 2, 3),
    1: (0, 1, 4),
}


def _shortest_moves(agent: int, cell) -> list[int]:
    r, c = cell
    out = []
    for a in range(1, N_ACTIONS):
        rr, cc = r + MOVES[a][0], c + MOVES[a][1]
        if 0 <= rr < ROWS and 0 <= cc < COLS and FREE[rr, cc] and DIST[agent, rr, cc] == DIST[agent, r, c] - 1:
            out.append(a)
    return out


def optimal_action(pos: np.ndarray, done: np.ndarray, t: int, mode: int, rng: np.random.Generator) -> np.ndarray:
    """The handcrafted multi-modal policy of §7 for one episode. mode 0: agent 0 crosses first."""
    if t == 0:
        return np.array([3, 3]) if mode == 0 else np.array([4, 4])  # (right,right) or (left,left)
    if t == 1:
        yielder, crosser = (1, 0) if mode == 0 else (0, 1)
        action = np.zeros(2, dtype=np.int64)
        action[crosser] = 3 if mode == 0 else 4  # keep moving forward into the vacated cell
        action[yielder] = rng.choice([1, 3, 2] if mode == 0 else [1, 4, 2])  # sidestep out of the corridor
        return action
    options = [list(NO_MOVE[i]) if done[i] else _shortest_moves(i, pos[i]) for i in range(N_AGENTS)]
    pairs = [(a0, a1) for a0 in options[0] for a1 in options[1]]
    if not all(done):  # keep only joint moves in which every walking agent gets closer (nobody blocked)
        moved = resolve_moves(pos[None], done[None], np.array(pairs))
        progress = [
            all(done[i] or DIST[i, m[i, 0], m[i, 1]] < DIST[i, pos[i, 0], pos[i, 1]] for i in range(N_AGENTS))
            for m in moved
        ]
        pairs = [p for p, ok in zip(pairs, progress) if ok] or pairs
    return np.array(pairs[rng.integers(len(pairs))])


def collect(policy: str, episodes: int, rng: np.random.Generator, horizon: int = DATA_HORIZON) -> dict[str, np.ndarray]:
    """Episodes in AlberDICE's buffer layout (§9: horizon+1 slots, final state in slot L)."""
    slots = horizon + 1
    out = {
        "state": np.zeros((episodes, slots, STATE_DIM), np.float32),
        "obs": np.zeros((episodes, slots, N_AGENTS, STATE_DIM), np.float32),
        "actions": np.zeros((episodes, slots, N_AGENTS, 1), np.int64),
        "avail_actions": np.zeros((episodes, slots, N_AGENTS, N_ACTIONS), np.int32),
        "reward": np.zeros((episodes, slots, 1), np.float32),
        "terminated": np.zeros((episodes, slots, 1), np.uint8),
        "filled": np.zeros((episodes, slots, 1), np.int64),
    }
    for e in range(episodes):
        env = BridgeCore(1, horizon)
        state = env.reset()[0]
        mode = int(rng.integers(2))
        for t in range(horizon):
            if policy == "random":
                action = rng.integers(N_ACTIONS, size=N_AGENTS)
            else:
                action = optimal_action(env.pos[0], env.done[0], t, mode, rng)
            out["state"][e, t], out["obs"][e, t] = state, state
            out["actions"][e, t, :, 0] = action
            out["avail_actions"][e, t] = 1
            out["filled"][e, t] = 1
            state, reward, terminated = env.step(action[None].astype(np.int64))
            state = state[0]
            out["reward"][e, t] = reward[0]
            if terminated[0]:
                out["terminated"][e, t] = 1
                break
        t += 1  # slot L: the final state, a dummy action (uniform over the 25 joint actions)
        out["state"][e, t], out["obs"][e, t] = state, state
        out["actions"][e, t, :, 0] = rng.integers(N_ACTIONS, size=N_AGENTS)
        out["avail_actions"][e, t] = 1
        out["filled"][e, t] = 1
    return out


def make_buffer(name: str, seed: int) -> dict[str, np.ndarray]:
    """§13: `optimal` = 500 handcrafted episodes; `mixed` = 500 uniform-random episodes, then the
    same seed's `optimal` episodes (as the released `buffer_mix` ends with `buffer_optimal`)."""
    if name == "optimal":
        return collect("optimal", 500, np.random.default_rng(seed))
    random_part = collect("random", 500, np.random.default_rng([seed, 1]))
    optimal_part = make_buffer("optimal", seed)
    return {k: np.concatenate([random_part[k], optimal_part[k]]) for k in random_part}


DATASETS = ("optimal", "mixed")
RELEASED_NAMES = {"optimal": "buffer_optimal", "mixed": "buffer_mix"}


def _checksum(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).tobytes())
    return digest.hexdigest()


def dataset_card(arrays: dict[str, np.ndarray], how: str, seed: int | None) -> dict:
    """OG-MARL-style card: episodes, transitions, return statistics, provenance."""
    filled = arrays["filled"][..., 0].astype(bool)
    returns = arrays["reward"][..., 0].sum(1)
    return {
        "episodes": int(len(returns)),
        "transitions": int((filled.sum(1) - 1).sum()),
        "return_mean": float(returns.mean()),
        "return_std": float(returns.std()),
        "return_min": float(returns.min()),
        "return_max": float(returns.max()),
        "how": how,
        "seed": seed,
    }


def format_card(card: dict) -> str:
    return (
        f"dataset: {card['how']} (seed {card['seed']}): {card['episodes']} episodes, {card['transitions']} "
        "transitions, "
        f"return {card['return_mean']:.4f} ± {card['return_std']:.4f} [{card['return_min']:.4f}, "
        f"{card['return_max']:.4f}]"
    )


def load_or_make(name: str, seed: int, cache_dir: str, dataset_dir: str | None = None):
    """Raw arrays and card of a dataset: the released files when `dataset_dir` is given, else the
    generated dataset, built on first use and cached (written to a temporary directory, then
    renamed; a cache whose checksum does not match is rebuilt, never trusted)."""
    if name not in DATASETS:
        raise InputError(f"unknown Bridge dataset {name!r}; accepted: {', '.join(DATASETS)}")
    if dataset_dir is not None:
        for (
            other,
            released,
        ) in RELEASED_NAMES.items():  # the run is labelled with --dataset: it must be what the files hold
            if other != name and os.path.basename(os.path.normpath(dataset_dir)) == released:
                raise InputError(
                    f"--dataset {name} with --dataset-dir {dataset_dir!r}, which holds the released {other!r} "
                    f"dataset; accepted: --dataset {other}, or the {RELEASED_NAMES[name]} directory"
                )
        arrays = load_buffer(dataset_dir, n_agents=N_AGENTS, n_actions=N_ACTIONS)
        if arrays["state"].shape[2] != STATE_DIM or arrays["obs"].shape[3] != STATE_DIM:
            raise InputError(
                f"{dataset_dir!r}: state and obs must have {STATE_DIM} features (docs/bridge.md §6), got "
                f"{arrays['state'].shape[2]} and {arrays['obs'].shape[3]}"
            )
        return arrays, dataset_card(arrays, f"released AlberDICE files {dataset_dir}", None)
    path = os.path.join(cache_dir, f"bridge_{name}_seed{seed}")
    card_path = os.path.join(path, "card.json")
    if os.path.isdir(path):
        try:
            with open(card_path) as f:
                card = json.load(f)
            arrays = load_buffer(path, n_agents=N_AGENTS, n_actions=N_ACTIONS)
            if _checksum(arrays) == card["sha256"]:
                return arrays, card
            reason = "checksum mismatch"
        except (InputError, OSError, ValueError, KeyError) as error:
            reason = str(error)
        print(f"warning: dataset cache {path!r} is corrupt ({reason}); rebuilding it")
    try:  # the cache directory first: an unwritable one fails before the work
        os.makedirs(cache_dir, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".bridge_{name}_", dir=cache_dir)
    except OSError as error:
        raise InputError(f"--cache-dir {cache_dir!r} cannot be written ({error.strerror or error})") from None
    try:
        arrays = make_buffer(name, seed)
        how = {
            "optimal": "generated: 500 episodes of the handcrafted optimal policy (docs/bridge.md §7)",
            "mixed": "generated: 500 uniform-random episodes (docs/bridge.md §8), then 500 optimal (§7)",
        }[name]
        card = dataset_card(arrays, how, seed)
        card["sha256"] = _checksum(arrays)
        for key, array in arrays.items():
            np.save(os.path.join(tmp, key + ".npy"), array)
        with open(os.path.join(tmp, "card.json"), "w") as f:
            json.dump(card, f, indent=2)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:  # a full disk or a kill: no half-written directory is left behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return arrays, card


def transitions(arrays: dict[str, np.ndarray], horizon: int = TRAIN_HORIZON) -> dict[str, np.ndarray]:
    """Episodes cut to the training horizon (§5, §12.1) as flat transitions."""
    return transitions_from_buffer(arrays, horizon=horizon)


class BridgeEnv(ParallelEnv):
    """Bridge as a PettingZoo ParallelEnv over one `BridgeCore` episode. The game is
    deterministic: `reset(seed=)` is accepted for the API and decides nothing else."""

    metadata = {"name": "inspo_bridge_v0", "render_modes": []}

    def __init__(self, horizon: int = TRAIN_HORIZON):
        self.core = BridgeCore(1, horizon)
        self.possible_agents = [f"agent_{i}" for i in range(N_AGENTS)]
        self.agents = []
        self.state_space = spaces.Box(0.0, float(COLS), shape=(STATE_DIM,), dtype=np.float32)
        self.render_mode = None

    @functools.cache
    def observation_space(self, agent):
        return spaces.Dict(
            {
                "observation": spaces.Box(0.0, float(COLS), shape=(STATE_DIM,), dtype=np.float32),
                "action_mask": spaces.Box(0, 1, shape=(N_ACTIONS,), dtype=np.int8),
            }
        )

    @functools.cache
    def action_space(self, agent):
        return spaces.Discrete(N_ACTIONS)

    def _obs(self, state):
        return {a: {"observation": state.copy(), "action_mask": np.ones(N_ACTIONS, np.int8)} for a in self.agents}

    def reset(self, seed=None, options=None):
        self.agents = list(self.possible_agents)
        state = self.core.reset()[0]
        return self._obs(state), {a: {} for a in self.agents}

    def step(self, actions):
        if not self.agents:
            raise InputError("step() before reset() or after the episode ended; call reset() first")
        if not isinstance(actions, dict) or set(actions) != set(self.agents):
            raise InputError(f"step() needs a dict of one action for each of {self.agents}, got {actions!r}")
        joint = np.array([[actions[a] for a in self.possible_agents]])
        state, reward, terminated = self.core.step(joint)
        obs = self._obs(state[0])
        rewards = {a: float(reward[0]) for a in self.agents}
        terms = {a: bool(terminated[0]) for a in self.agents}
        truncs = {a: False for a in self.agents}  # the time limit makes every agent done (§5): a termination
        infos = {a: {} for a in self.agents}
        if terminated[0]:
            self.agents = []
        return obs, rewards, terms, truncs, infos

    def state(self):
        return observe(self.core.pos)[0]
