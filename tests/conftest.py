"""Shared helpers: where AlberDICE's released files are and a writer of buffers in their format; the
scripts' command lines run as a user types them (run_script) or in this process (run_cli); a stand-in
wandb; TensorBoard readers; spies on a script's functions; a check that a run leaves the global RNGs alone."""

import contextlib
import functools
import importlib
import json
import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# `pytest -n auto` (README) runs one test process per core: one torch thread each, for them and for the
# scripts they start, instead of several threads each fighting over the same cores.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# AlberDICE's released files (github.com/dematsunaga/alberdice, folder buffer/) are never copied into the
# project: point INSPO_ALBERDICE_DIR at that folder; the tests that need them are skipped otherwise.
ALBERDICE_DIR = os.environ.get("INSPO_ALBERDICE_DIR", os.path.join(ROOT, "alberdice", "buffer"))


def alberdice_path(*parts: str) -> str:
    path = os.path.join(ALBERDICE_DIR, *parts)
    if not os.path.isdir(path):
        pytest.skip(f"AlberDICE's released files are not at {path} (set INSPO_ALBERDICE_DIR)")
    return path


def write_buffer(path, state, obs, actions, reward, terminated, filled, n_actions):
    """Write episodes in AlberDICE's PyMARL buffer layout (docs/bridge.md §9)."""
    os.makedirs(path, exist_ok=True)
    filled = np.asarray(filled, dtype=np.int64)[..., None]
    arrays = {
        "state": np.asarray(state, np.float32),
        "obs": np.asarray(obs, np.float32),
        "actions": np.asarray(actions, np.int64)[..., None],
        "actions_onehot": np.eye(n_actions, dtype=np.float32)[np.clip(actions, 0, n_actions - 1)] * filled[..., None],
        "avail_actions": np.ones(np.shape(actions) + (n_actions,), np.int32) * filled[..., None].astype(np.int32),
        "reward": np.asarray(reward, np.float32)[..., None],
        "terminated": np.asarray(terminated, np.uint8)[..., None],
        "filled": filled,
    }
    for name, array in arrays.items():
        np.save(os.path.join(path, name + ".npy"), array)
    with open(os.path.join(path, "meta.json"), "w") as f:
        json.dump({"buffer_index": 0, "episodes_in_buffer": len(filled), "buffer_size": len(filled)}, f)
    return path


def run_script(script: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run one of the top-level scripts as a user would."""
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, script), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


def run_cli(script: str, argv: list[str], capsys, monkeypatch) -> tuple[int, str]:
    """`python <script> argv...` in this process, for a script that ends with an error: (exit code,
    stderr). The script's `if __name__ == "__main__":` block runs in the imported module, whose functions
    are then the ones the other tests call (a mutation tool switches a mutant on by module name, which
    `__main__` would not match), and the interpreter's start and imports are paid once per test worker."""
    module = importlib.import_module(script.removesuffix(".py").replace("/", "."))
    monkeypatch.setattr(sys, "argv", [script, *argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        exec(main_block(script), module.__dict__)
    return exit_info.value.code, capsys.readouterr().err


@functools.cache
def main_block(script: str):
    """The body of the script's `if __name__ == "__main__":` block, compiled."""
    with open(os.path.join(ROOT, script)) as f:
        body = f.read().split('\nif __name__ == "__main__":\n', 1)[1]
    return compile(textwrap.dedent(body), os.path.join(ROOT, script), "exec")


def assert_cli_error(script: str, argv: list[str], capsys, monkeypatch, *fragments: str) -> None:
    """In this process: exit code 2, no traceback, and one `error:` line naming every fragment."""
    code, err = run_cli(script, [str(a) for a in argv], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in err, (code, err[-2000:])
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(f in lines[0] for f in fragments), (fragments, lines[0])


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    """Exit code 2, no traceback, and an error line naming every fragment."""
    assert result.returncode == 2, (result.returncode, result.stdout[-500:], result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if any(f in line for f in fragments)]
    assert lines, result.stderr
    assert all(f in lines[0] for f in fragments), (fragments, lines[0])


@contextlib.contextmanager
def global_rngs_untouched():
    """The code inside draws only from its own generators: torch's, numpy's and Python's global RNGs are
    exactly as they were afterwards (neither reseeded nor drawn from), so a caller's randomness and the
    run's numbers cannot disturb each other."""
    import torch

    before = torch.get_rng_state(), np.random.get_state(), random.getstate()
    yield
    assert torch.equal(torch.get_rng_state(), before[0]), "torch's global RNG was reseeded or drawn from"
    state = np.random.get_state()
    assert state[0] == before[1][0] and np.array_equal(state[1], before[1][1]) and state[2:] == before[1][2:], (
        "numpy's global RNG was reseeded or drawn from"
    )
    assert random.getstate() == before[2], "Python's global RNG was reseeded or drawn from"


@pytest.fixture
def fake_wandb(monkeypatch) -> list[dict]:
    """A stand-in `wandb` module for --track: the keyword arguments of every wandb.init call."""
    import types

    calls: list[dict] = []
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kwargs: calls.append(kwargs)))
    return calls


def assert_tracked(calls: list[dict], run_dir: str, project: str, entity: str) -> None:
    """One wandb run, named as the run directory, mirroring TensorBoard, with the run's arguments."""
    assert len(calls) == 1, calls
    call = calls[0]
    assert (call["project"], call["entity"], call["name"], call["sync_tensorboard"]) == (
        project,
        entity,
        os.path.basename(run_dir),
        True,
    )
    assert call["config"]["track"] is True and call["config"]["wandb_project_name"] == project


def tensorboard_scalars(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every TensorBoard scalar a run wrote: tag -> [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(run_dir)
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensorboard_hyperparameters(run_dir: str) -> dict[str, str]:
    """The run's arguments as its TensorBoard text card lists them (CleanRL's `hyperparameters` table)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(run_dir, size_guidance={"tensors": 0})
    events.Reload()
    [card] = events.Tensors("hyperparameters/text_summary")
    lines = tensor_util.make_ndarray(card.tensor_proto)[0].decode().split("\n")
    assert lines[:2] == ["|param|value|", "|-|-|"] and card.step == 0, lines[:2]
    return dict(line.strip("|").split("|", 1) for line in lines[2:])


def assert_hyperparameters(run_dir: str, summary: dict) -> None:
    assert tensorboard_hyperparameters(run_dir) == {k: str(v) for k, v in summary["args"].items()}


def assert_summary_file(run_dir: str, summary: dict) -> None:
    """summary.json beside the run is the summary main() returned, indented by two spaces for reading."""
    with open(os.path.join(run_dir, "summary.json")) as f:
        text = f.read()
    assert json.loads(text) == json.loads(json.dumps(summary)) and text.startswith('{\n  "'), text[:40]


def steps(points: list[tuple[int, float]]) -> list[int]:
    return [step for step, _ in points]


class LinearCritic:
    """Q(s, ·) = s W for given weights W [state features, actions]: its values are known exactly."""

    def __init__(self, weights):
        import torch

        self.w = torch.nn.Parameter(torch.as_tensor(weights, dtype=torch.float32))

    def __call__(self, state):
        return state @ self.w


class FixedPolicy:
    """π^i(·|o) = the same given distribution in every observation, unavailable actions masked."""

    def __init__(self, probs):
        import torch

        self.log_probs = torch.log(torch.tensor(probs))

    def __call__(self, obs, avail):
        return self.log_probs.expand(len(obs), -1).masked_fill(avail == 0, -1e9).log_softmax(-1)


def install_fake_smac(monkeypatch, starcraft2env) -> None:
    """For this test, `from smac.env import StarCraft2Env` (SMAC's source install) gives `starcraft2env`."""
    import types

    env_module = types.ModuleType("smac.env")
    env_module.StarCraft2Env = starcraft2env
    monkeypatch.setitem(sys.modules, "smac", types.ModuleType("smac"))
    monkeypatch.setitem(sys.modules, "smac.env", env_module)


def record_calls(monkeypatch, module, name: str) -> list[tuple[tuple, object]]:
    """Spy on module.name for this test: (positional arguments, result) of every call, in order."""
    calls, real = [], getattr(module, name)

    def spy(*args):
        result = real(*args)
        calls.append((args, result))
        return result

    monkeypatch.setattr(module, name, spy)
    return calls


def install_spies(monkeypatch, module, *spies) -> dict:
    """Put each spy in place of the module's function of the same name (for this test only) and
    return the real functions by name, for the spies to call once they have recorded their call."""
    real = {spy.__name__: getattr(module, spy.__name__) for spy in spies}
    for spy in spies:
        monkeypatch.setattr(module, spy.__name__, spy)
    return real
