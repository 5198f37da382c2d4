"""`--cuda`: every script and the behaviour agent on a GPU (skipped where there is none; run by
benchmarks/gpu.sh, results in benchmarks/results/gpu.md). That a checkpoint resumes only on its own
device is tested on the CPU in test_smac_inspo.py."""

import os

import numpy as np
import pytest
import torch
from test_bridge import bridge_args
from test_matrix import QRE_RUN, qre_residual
from test_matrix import run as run_matrix
from test_smac_data import qmix_snapshots_straight_and_resumed
from test_smac_inspo import scripted_file, tiny_args  # noqa: F401  (a fixture)

import inspo_bridge
import inspo_smac
from envs import InputError
from envs.smac_data import POLICY_DIR, load_agent, load_h5, load_or_make

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run_dir(path) -> str:
    return os.path.join(str(path), os.listdir(path)[0])


@gpu
def test_matrix_practical_reaches_the_closed_form_qre_on_the_gpu(tmp_path):
    """The CPU test's fixed point, seeds 0-4: on the CPU the residual is 0.003-0.017 (median 0.006) and
    0.26-0.27 against a wrong β; the GPU draws other random streams, so its spread is measured here."""
    residuals = []
    for seed in range(5):
        summary = run_matrix(tmp_path / str(seed), **QRE_RUN, exact=False, num_updates=500, cuda=True, seed=seed)
        residuals.append(qre_residual(summary, QRE_RUN["alpha"], QRE_RUN["beta_0"]))
    print("GPU QRE residuals, seeds 0-4:", residuals)
    assert np.median(residuals) < 0.02 and max(residuals) < 0.05, residuals


@gpu
def test_bridge_learns_and_resumes_exactly_on_the_gpu(tmp_path):
    cache = str(tmp_path / "cache")
    summary = inspo_bridge.main(bridge_args(tmp_path / "learn", cache, cuda=True))
    assert summary["final_return_stochastic"] > -1.40  # the CPU test's threshold
    short = dict(checkpoint_interval=20, eval_interval=20, bc_updates=20, cuda=True)
    straight = inspo_bridge.main(bridge_args(tmp_path / "a", cache, num_updates=40, **short))
    inspo_bridge.main(bridge_args(tmp_path / "b", cache, num_updates=20, **short))
    checkpoint = os.path.join(run_dir(tmp_path / "b"), "checkpoint.pt")
    resumed = inspo_bridge.main(bridge_args(tmp_path / "b", cache, num_updates=40, resume=checkpoint, **short))
    assert [h[1] for h in resumed["history"]] == [h[1] for h in straight["history"]]
    with pytest.raises(InputError, match="was written on cuda, this run is on cpu"):
        inspo_bridge.main(
            bridge_args(tmp_path / "b", cache, num_updates=60, resume=checkpoint, **{**short, "cuda": False})
        )


@gpu
def test_smac_runs_and_resumes_exactly_on_the_gpu(tmp_path, scripted_file):  # noqa: F811  (the fixture)
    straight = inspo_smac.main(tiny_args(tmp_path / "a", scripted_file, cuda=True))
    assert np.isfinite(straight["final_return"]) and 0 <= straight["final_win_rate"] <= 1
    inspo_smac.main(tiny_args(tmp_path / "b", scripted_file, num_updates=3, cuda=True))
    checkpoint = os.path.join(run_dir(tmp_path / "b"), "checkpoint.pt")
    assert torch.load(checkpoint, weights_only=False)["device"] == "cuda"
    resumed = inspo_smac.main(tiny_args(tmp_path / "b", scripted_file, resume=checkpoint, cuda=True))
    assert [h[:3] for h in resumed["history"]] == [h[:3] for h in straight["history"]]
    assert resumed["final_return"] == straight["final_return"]


@gpu
def test_qmix_trains_and_resumes_exactly_on_the_gpu(tmp_path, capsys):
    for sx, sy in qmix_snapshots_straight_and_resumed(tmp_path, capsys, "--cuda"):
        assert all(sx[k].device.type == "cpu" and torch.equal(sx[k], sy[k]) for k in sx)  # snapshots load anywhere


@gpu
def test_the_behaviour_agent_computes_the_cpus_q_values_on_the_gpu(tmp_path):
    """Datasets are always made on the CPU (envs/smac_data._rollouts): greedy rollouts on a GPU
    diverge from the CPU's once a near-tie of the argmax flips (seen here: 16 episodes of 2s3z
    medium differed). What must agree is the arithmetic: the shipped agent's Q-values along
    recorded episodes to rounding, and its greedy action wherever the top two are apart."""
    path, _ = load_or_make("2s3z", "medium", 0, str(tmp_path), episodes=16)
    data = load_h5(path, "2s3z")
    obs, actions = torch.as_tensor(data["obs"]), torch.as_tensor(data["actions"])
    last = torch.cat([torch.full_like(actions[:, :1], -1), actions[:, :-1]], 1)
    avail, filled = torch.as_tensor(data["avail_actions"]) == 1, torch.as_tensor(data["filled"]) == 1
    greedy_q = {}
    for device in ("cpu", "cuda"):
        agent = load_agent(os.path.join(POLICY_DIR, "2s3z", "medium.pt"), "2s3z", device)
        with torch.no_grad():
            q, _ = agent(agent.inputs(obs.to(device), last.to(device)))
        greedy_q[device] = q.cpu().masked_fill(~avail, -torch.inf)
    cpu, gpu_q = greedy_q["cpu"][filled], greedy_q["cuda"][filled]
    finite = torch.isfinite(cpu)
    diff, scale = (cpu - gpu_q)[finite].abs().max().item(), cpu[finite].abs().max().item()
    top = cpu.topk(2, -1).values
    clear = (top[..., 0] - top[..., 1]) > 10 * diff
    print(
        f"max |Q_cpu - Q_gpu| {diff:.2e} (max |Q| {scale:.2f}); greedy actions compared at {clear.float().mean():.3f} "
        "of steps"
    )
    assert diff <= 0.02 * scale  # a wrong input or hidden state is off by the order of |Q|; TF32 rounding is not
    assert torch.equal(cpu.argmax(-1)[clear], gpu_q.argmax(-1)[clear])
    assert torch.equal(cpu.argmax(-1), actions[filled])  # the dataset is the CPU's greedy play
