"""Reader of AlberDICE's released PyMARL episode buffers (their layout: docs/bridge.md §9).

A buffer directory holds `state.npy` (N,T,S), `obs.npy` (N,T,n_agents,O), `actions.npy`
(N,T,n_agents,1), `avail_actions.npy`, `reward.npy` (N,T,1), `terminated.npy` (N,T,1) and
`filled.npy` (N,T,1), plus `meta.json`. Slots 0..L-1 of an episode are transitions, slot L
holds the final state (filled, dummy action), later slots are zero padding.
"""

from __future__ import annotations

import os

import numpy as np

from envs import InputError

FILES = {  # name: (number of dimensions, accepted dtype kinds)
    "state": (3, "f"),
    "obs": (4, "f"),
    "actions": (4, "iu"),
    "avail_actions": (4, "iu"),
    "reward": (3, "f"),
    "terminated": (3, "iub"),
    "filled": (3, "iub"),
}


def load_buffer(path: str, n_agents: int, n_actions: int) -> dict[str, np.ndarray]:
    """Load and validate one buffer directory; return its arrays (episode-major, PyMARL slots).

    Every problem (missing directory or file, unreadable file, wrong shape or dtype, NaN,
    action outside 0..n_actions-1) raises `InputError` with a one-line message.
    """
    if not os.path.isdir(path):
        raise InputError(
            f"dataset directory {path!r} does not exist (expected a directory holding "
            f"{', '.join(f + '.npy' for f in FILES)})"
        )
    arrays = {}
    for name, (ndim, kinds) in FILES.items():
        file = os.path.join(path, name + ".npy")
        if not os.path.isfile(file):
            raise InputError(
                f"dataset directory {path!r} has no {name}.npy (expected {', '.join(f + '.npy' for f in FILES)})"
            )
        try:
            array = np.load(file, allow_pickle=False)
        except Exception as error:  # truncated, not a .npy, pickled objects
            raise InputError(
                f"cannot read {file!r}: {type(error).__name__}: {error} (expected a numpy .npy file)"
            ) from None
        if array.ndim != ndim or array.dtype.kind not in kinds:
            raise InputError(
                f"{file!r} has shape {array.shape} and dtype {array.dtype}; expected {ndim} dimensions of kind "
                f"{kinds!r}"
            )
        arrays[name] = array
    n_episodes, n_slots = arrays["state"].shape[:2]
    expected = {
        "obs": (n_episodes, n_slots, n_agents),
        "actions": (n_episodes, n_slots, n_agents, 1),
        "avail_actions": (n_episodes, n_slots, n_agents, n_actions),
        "reward": (n_episodes, n_slots, 1),
        "terminated": (n_episodes, n_slots, 1),
        "filled": (n_episodes, n_slots, 1),
    }
    for name, shape in expected.items():
        if arrays[name].shape[: len(shape)] != shape:
            raise InputError(
                f"{os.path.join(path, name + '.npy')!r} has shape {arrays[name].shape}; expected "
                f"{shape + ('...',) if name == 'obs' else shape} ({n_agents} agents, {n_actions} actions, "
                f"{n_episodes} episodes of {n_slots} slots)"
            )
    for name in ("state", "obs", "reward"):
        if not np.isfinite(arrays[name]).all():
            raise InputError(f"{os.path.join(path, name + '.npy')!r} contains NaN or infinite values")
    for name in ("filled", "terminated", "avail_actions"):
        if not np.isin(arrays[name], (0, 1)).all():
            raise InputError(f"{os.path.join(path, name + '.npy')!r} holds values other than 0 and 1")
    filled = arrays["filled"][..., 0].astype(bool)
    if (filled[:, 1:] & ~filled[:, :-1]).any():
        e = int(np.argwhere(filled[:, 1:] & ~filled[:, :-1])[0, 0])
        raise InputError(
            f"{os.path.join(path, 'filled.npy')!r}: episode {e} has a filled slot after an empty one; "
            "accepted: each episode's filled slots first, then padding"
        )
    transition = filled[:, 1:]  # slot t is a transition when slot t + 1 is filled (slot L holds the final state)
    if not transition.any():
        raise InputError(f"dataset directory {path!r} holds no transition (no episode has two filled slots)")
    actions = arrays["actions"][:, :-1, :, 0]
    bad = transition[..., None] & ((actions < 0) | (actions >= n_actions))
    if bad.any():
        e, t, _ = np.argwhere(bad)[0]
        raise InputError(
            f"{os.path.join(path, 'actions.npy')!r}: episode {e} slot {t} has actions {actions[e, t].tolist()}; "
            f"accepted 0..{n_actions - 1}"
        )
    avail = arrays["avail_actions"][:, :-1]
    taken = np.take_along_axis(avail, np.clip(actions, 0, n_actions - 1)[..., None], -1)[..., 0]
    bad = transition[..., None] & (taken == 0)
    if bad.any():  # behaviour cloning would train on log-probabilities of about −1e9
        e, t, i = np.argwhere(bad)[0]
        raise InputError(
            f"{os.path.join(path, 'actions.npy')!r}: episode {e} slot {t}: agent {i} took action {actions[e, t, i]}, "
            "which avail_actions.npy marks unavailable; accepted: taken actions available"
        )
    return arrays


def transitions_from_buffer(arrays: dict[str, np.ndarray], horizon: int | None = None) -> dict[str, np.ndarray]:
    """Flatten episodes to transitions (s, o, a, r, s', o', done, avail, avail').

    `horizon` cuts every episode to its first `horizon` steps (docs/bridge.md §5: data collected
    with limit 50, trained with 20); a cut episode's last kept step is a truncation, so its
    `done` stays 0 and the critic bootstraps from s'.
    """
    filled = arrays["filled"][..., 0].astype(bool)
    length = filled.sum(1) - 1  # L env steps; slot L holds the final state
    n_slots = filled.shape[1]
    t = np.arange(n_slots - 1)
    keep = t[None, :] < length[:, None]
    if horizon is not None:
        keep &= t[None, :] < horizon
    ep, ts = np.nonzero(keep)
    next_avail = arrays["avail_actions"][ep, ts + 1].astype(np.float32)
    next_avail[next_avail.sum(-1) == 0] = 1.0  # padding after the final state: any action, never used
    return {
        "state": arrays["state"][ep, ts].astype(np.float32),
        "obs": arrays["obs"][ep, ts].astype(np.float32),
        "actions": arrays["actions"][ep, ts, :, 0].astype(np.int64),
        "avail": arrays["avail_actions"][ep, ts].astype(np.float32),
        "reward": arrays["reward"][ep, ts, 0].astype(np.float32),
        "next_state": arrays["state"][ep, ts + 1].astype(np.float32),
        "next_obs": arrays["obs"][ep, ts + 1].astype(np.float32),
        "next_avail": next_avail,
        "done": arrays["terminated"][ep, ts, 0].astype(np.float32),
        "episode": ep.astype(np.int64),
    }
