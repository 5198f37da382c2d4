"""One-step cooperative matrix games of the InSPO paper: XOR (Figure 1) and M-NE (Figure 2).

Two agents act once and receive the shared payoff R[a^1, a^2]; a play is an episode
(the paper's Table 1 reports per-play returns). The single state is the constant vector
[1.0], which is also each agent's observation.

Datasets (the paper's Figures 1 and 2; docs/bridge.md §11 for AlberDICE's XOR files):
  XOR (a) {(A,B),(B,A)}, (b) {(A,A),(A,B),(B,A)}, (c) all four, each equally likely, as
  AlberDICE's `buffer_02_20`, `buffer_00_02_20`, `buffer_random` (whose plays are i.i.d. draws);
  M-NE balanced: each agent uniform over (A,B,C); imbalanced: each agent (0.8, 0.1, 0.1),
  independently (Figure 2b is the product).
"""

from __future__ import annotations

import functools

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from envs import InputError, is_int
from envs.alberdice import load_buffer, transitions_from_buffer

PAYOFFS = {
    "xor": np.array([[0.0, 1.0], [1.0, -2.0]], dtype=np.float32),
    "mne": np.array([[5.0, -20.0, -20.0], [-20.0, 10.0, -20.0], [-20.0, -20.0, 20.0]], dtype=np.float32),
}
ACTION_NAMES = {"xor": ("A", "B"), "mne": ("A", "B", "C")}
N_AGENTS = 2
STATE = np.ones(1, dtype=np.float32)  # the single state; also each agent's observation

# Joint-action distributions of the datasets, as arrays indexed [a^1, a^2].
DATASETS = {
    "xor": {
        "a": np.array([[0.0, 0.5], [0.5, 0.0]]),
        "b": np.array([[1 / 3, 1 / 3], [1 / 3, 0.0]]),
        "c": np.full((2, 2), 0.25),
    },
    "mne": {
        "balanced": np.outer([1 / 3] * 3, [1 / 3] * 3),
        "imbalanced": np.outer([0.8, 0.1, 0.1], [0.8, 0.1, 0.1]),
    },
}
# AlberDICE's file names for the XOR datasets (docs/bridge.md §11).
ALBERDICE_NAMES = {"a": "buffer_02_20", "b": "buffer_00_02_20", "c": "buffer_random"}


def check_game(game: str, dataset: str | None = None) -> None:
    if game not in PAYOFFS:
        raise InputError(f"unknown game {game!r}; accepted: {', '.join(PAYOFFS)}")
    if dataset is not None and dataset not in DATASETS[game]:
        raise InputError(
            f"dataset {dataset!r} does not fit game {game!r}; accepted for {game}: {', '.join(DATASETS[game])}"
        )


def _transitions(game: str, actions: np.ndarray, rewards: np.ndarray) -> dict[str, np.ndarray]:
    """One-step transitions in the layout every InSPO script reads (done = 1: a play is an episode)."""
    n = len(actions)
    n_actions = PAYOFFS[game].shape[0]
    state = np.broadcast_to(STATE, (n, STATE.size)).copy()
    obs = np.broadcast_to(STATE, (n, N_AGENTS, STATE.size)).copy()
    avail = np.ones((n, N_AGENTS, n_actions), dtype=np.float32)
    return {
        "state": state,
        "obs": obs,
        "actions": actions.astype(np.int64),
        "avail": avail,
        "reward": rewards.astype(np.float32),
        "next_state": state.copy(),
        "next_obs": obs.copy(),
        "next_avail": avail.copy(),
        "done": np.ones(n, dtype=np.float32),
    }


def make_dataset(game: str, dataset: str, seed: int, num_plays: int = 5400) -> dict[str, np.ndarray]:
    """`num_plays` joint actions in exactly the proportions of Figure 1(b) / 2(b), shuffled by `seed`.

    Exact proportions, not i.i.d. draws: the counts of a symmetric dataset stay symmetric, so the
    theory (and --exact) can be checked by hand. 5400 plays (AlberDICE's files hold 5000) make
    every proportion an integer count; other sizes round by largest remainder.
    """
    check_game(game, dataset)
    if num_plays <= 0:
        raise InputError(f"num_plays must be positive, got {num_plays}")
    probs = DATASETS[game][dataset].ravel()
    counts = np.floor(probs * num_plays).astype(int)
    remainder = probs * num_plays - counts
    counts[np.argsort(-remainder, kind="stable")[: num_plays - counts.sum()]] += 1
    flat = np.random.default_rng(seed).permutation(np.repeat(np.arange(probs.size), counts))
    actions = np.stack(np.unravel_index(flat, DATASETS[game][dataset].shape), axis=1)
    return _transitions(game, actions, PAYOFFS[game][actions[:, 0], actions[:, 1]])


def load_alberdice_xor(path: str) -> dict[str, np.ndarray]:
    """AlberDICE's released XOR buffer (100 episodes of 50 plays) as one-step plays.

    The rewards are checked against the XOR payoff, so a file from another game fails loudly.
    """
    arrays = load_buffer(path, n_agents=N_AGENTS, n_actions=2)
    data = transitions_from_buffer(arrays)
    expected = PAYOFFS["xor"][data["actions"][:, 0], data["actions"][:, 1]]
    if not np.allclose(data["reward"], expected):
        i = int(np.flatnonzero(~np.isclose(data["reward"], expected))[0])
        raise InputError(
            f"{path!r}: play {i} has actions {data['actions'][i].tolist()} and reward {data['reward'][i]}, "
            f"but the XOR payoff is {expected[i]} (is this an XOR buffer?)"
        )
    return _transitions("xor", data["actions"], data["reward"])


def joint_return(game: str, pi1: np.ndarray, pi2: np.ndarray) -> float:
    """Expected payoff of independent policies: sum_{a1,a2} pi1(a1) pi2(a2) R(a1,a2)."""
    return float(pi1 @ PAYOFFS[game] @ pi2)


class MatrixGameEnv(ParallelEnv):
    """The one-step game as a PettingZoo ParallelEnv: observe, act once, get R[a^1, a^2], done."""

    metadata = {"name": "inspo_matrix_v0", "render_modes": []}

    def __init__(self, game: str = "xor"):
        check_game(game)
        self.game = game
        self.payoff = PAYOFFS[game]
        self.possible_agents = [f"agent_{i}" for i in range(N_AGENTS)]
        self.agents = []
        self.state_space = spaces.Box(0.0, 1.0, shape=STATE.shape, dtype=np.float32)

    @functools.cache
    def observation_space(self, agent):
        n = self.payoff.shape[0]
        return spaces.Dict(
            {
                "observation": spaces.Box(0.0, 1.0, shape=STATE.shape, dtype=np.float32),
                "action_mask": spaces.Box(0, 1, shape=(n,), dtype=np.int8),
            }
        )

    @functools.cache
    def action_space(self, agent):
        return spaces.Discrete(self.payoff.shape[0])

    def _observations(self):
        mask = np.ones(self.payoff.shape[0], dtype=np.int8)
        return {agent: {"observation": STATE.copy(), "action_mask": mask.copy()} for agent in self.agents}

    def reset(self, seed=None, options=None):
        # The game has no randomness; `seed` is accepted for the PettingZoo API.
        self.agents = list(self.possible_agents)
        return self._observations(), {agent: {} for agent in self.agents}

    def step(self, actions):
        if not self.agents:
            raise InputError("step() before reset() or after the episode ended; call reset() first")
        if not isinstance(actions, dict) or set(actions) != set(self.agents):
            raise InputError(f"step() needs a dict of one action for each of {self.agents}, got {actions!r}")
        n = self.payoff.shape[0]
        for agent, action in actions.items():
            if not (is_int(action) and 0 <= action < n):
                raise InputError(f"action {action!r} of {agent} is not accepted; accepted: integers 0..{n - 1}")
        reward = float(self.payoff[actions["agent_0"], actions["agent_1"]])
        observations = self._observations()
        rewards = {agent: reward for agent in self.agents}
        terminations = {agent: True for agent in self.agents}
        truncations = {agent: False for agent in self.agents}
        infos = {agent: {} for agent in self.agents}
        self.agents = []
        return observations, rewards, terminations, truncations, infos

    def state(self):
        return STATE.copy()
