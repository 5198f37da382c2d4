"""inspo_smac.py: the recurrent pipeline on tiny SMAC datasets (masking, in-sample, unroll,
determinism, resume, CFCQL files) and its command line."""

import json
import os

import numpy as np
import pytest
import torch

import inspo_smac
from conftest import (
    assert_hyperparameters,
    assert_summary_file,
    assert_tracked,
    global_rngs_untouched,
    install_fake_smac,
    install_spies,
    record_calls,
    run_script,
    steps,
    tensorboard_scalars,
)
from envs import InputError
from envs.smac import SMACBatch
from envs.smac_data import H5Writer, format_card, load_h5, map_sizes, rollout

TINY = dict(
    map="2s3z",
    dataset="medium",
    num_updates=6,
    bc_updates=30,
    batch_episodes=4,
    batch_size=64,
    hidden_dim=32,
    eval_interval=3,
    eval_episodes=4,
    final_eval_episodes=8,
    progress=False,
    checkpoint_interval=3,
)


def write_scripted_file(path: str) -> str:
    """24 episodes of 2s3z played by the attack-nearest team without the variety rules (with them, a unit
    sometimes walks south toward its target), in CFCQL's h5 layout. The team never stops and never moves
    north, south or west (actions 1, 2, 3, 5)."""
    writer = H5Writer(path, 24, map_sizes("2s3z"))
    battles = SMACBatch("2s3z", 24, seed=11, auto_reset=False, variety=False)
    out = rollout(battles, None, 0.0, np.random.default_rng(0), scripted="attack-nearest")
    writer.write({k: v for k, v in out.items() if k not in ("won", "timeout", "length")})
    writer.close()
    actions = load_h5(path, "2s3z")["actions"]
    assert not np.isin(actions, [1, 2, 3, 5]).any()
    return path


@pytest.fixture(scope="module")
def scripted_file(tmp_path_factory):
    return write_scripted_file(str(tmp_path_factory.mktemp("data") / "2s3z_scripted.h5"))


def tiny_args(tmp_path, scripted_file, **overrides):
    return inspo_smac.Args(**{**TINY, "dataset_file": scripted_file, "runs_dir": str(tmp_path), **overrides})


def test_end_to_end_cli_with_a_cfcql_file(tmp_path, scripted_file):
    result = run_script(
        "inspo_smac.py",
        "--map",
        "2s3z",
        "--dataset-file",
        scripted_file,
        "--num-updates",
        "4",
        "--bc-updates",
        "10",
        "--batch-episodes",
        "4",
        "--batch-size",
        "32",
        "--hidden-dim",
        "32",
        "--eval-interval",
        "2",
        "--eval-episodes",
        "4",
        "--final-eval-episodes",
        "4",
        "--no-progress",
        "--runs-dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: ")
    with open(last[len("summary: ") :]) as f:
        summary = json.load(f)
    for key in ("final_win_rate", "final_return", "best_win_rate", "bc_win_rate", "wall_time_s", "num_updates", "args"):
        assert key in summary
    assert summary["card"]["episodes"] == 24 and summary["card"]["win_rate"] == 1.0
    assert [h[0] for h in summary["history"]] == [2, 4]


def test_without_a_dataset_file_the_dataset_is_generated_and_cached(tmp_path):
    arrays, card = inspo_smac.load_dataset(
        inspo_smac.Args(map="2s3z", dataset="medium", dataset_episodes=4, cache_dir=str(tmp_path))
    )
    assert card["source"] == os.path.join(tmp_path, "smac", "2s3z_medium_seed0_n4.h5") and card["episodes"] == 4
    cached = load_h5(card["source"], "2s3z")
    assert arrays.keys() == cached.keys() and all(np.array_equal(arrays[k], cached[k]) for k in arrays)


def test_unroll_matches_step_by_step_acting(scripted_file):
    data = inspo_smac.episode_tensors(load_h5(scripted_file, "2s3z"), "cpu")
    batch = inspo_smac.episode_batch(data, torch.arange(3))
    torch.manual_seed(0)
    policies = [inspo_smac.RecurrentPolicy(batch["inputs"].shape[-1], 11, 16) for _ in range(5)]
    unrolled = torch.stack([inspo_smac.unroll(p, batch, i) for i, p in enumerate(policies)], 2)  # [B, T, N, A]
    cell = torch.nn.GRUCell(16, 16)  # the same weights as a GRUCell, one step at a time
    for i, policy in enumerate(policies):
        cell.load_state_dict({k.replace("_l0", ""): v for k, v in policy.rnn.state_dict().items()})
        h = torch.zeros(3, 16)
        for t in range(batch["obs"].shape[1]):
            h = cell(torch.relu(policy.fc1(batch["inputs"][:, t, i])), h)
            logp = inspo_smac.masked_log_softmax(policy.fc2(h), batch["avail"][:, t, i])
            torch.testing.assert_close(logp, unrolled[:, t, i], atol=1e-5, rtol=1e-5)
    # act() carries the hidden state between calls exactly like the unroll
    hidden = [None] * 5
    for t in range(batch["obs"].shape[1]):
        greedy = inspo_smac.act(
            policies,
            batch["obs"][:, t].numpy(),
            batch["avail"][:, t].int().numpy(),
            batch["last_actions"][:, t].numpy(),
            hidden,
            True,
            None,
            "cpu",
        )
        live = batch["avail"][:, t].any(-1).all(-1).numpy()
        np.testing.assert_array_equal(greedy[live], unrolled[:, t].argmax(-1).numpy()[live])


class Spiked(torch.nn.Module):
    """A critic plus a huge value on the actions a mask marks unavailable."""

    def __init__(self, critic, avail):
        super().__init__()
        self.critic, self.avail = critic, avail

    def forward(self, state):
        return self.critic(state) + 1e4 * (~self.avail).float()


def test_masking_in_the_policy_the_critic_target_and_cql(scripted_file):
    data = inspo_smac.episode_tensors(load_h5(scripted_file, "2s3z"), "cpu")
    batch = inspo_smac.episode_batch(data, torch.arange(4))
    policy = inspo_smac.RecurrentPolicy(batch["inputs"].shape[-1], 11, 16)
    logp = inspo_smac.unroll(policy, batch, 0)
    live = batch["avail"][:, :, 0].any(-1)
    assert (logp.exp()[~batch["avail"][:, :, 0] & live[..., None]] == 0).all()
    # Eq. 24: neither the soft target, nor the TD term, nor CQL may see the value of an unavailable action
    batch["log_mu"] = inspo_smac.masked_log_softmax(torch.zeros(*batch["avail"].shape), batch["avail"])
    critic = inspo_smac.Critic(batch["state"].shape[-1], 11, 16)
    steps = batch["valid"].flatten().nonzero().squeeze(1)[:32]
    b, t = steps // batch["reward"].shape[1], steps % batch["reward"].shape[1]
    assert not batch["avail"][b, t, 0].all() and not batch["avail"][b, t + 1, 0].all()
    args = inspo_smac.Args(cql_alpha=1.0)
    targets = torch.zeros_like(batch["reward"])
    base = inspo_smac.critic_loss(batch, steps, 0, critic, targets, args)
    online = inspo_smac.critic_loss(batch, steps, 0, Spiked(critic, batch["avail"][b, t, 0]), targets, args)
    torch.testing.assert_close(online, base)
    logps = [logp.detach()] * 5
    values = inspo_smac.soft_values(batch, logps, [critic] * 5, 0.1, 0.5)
    spiked = inspo_smac.soft_values(batch, logps, [Spiked(critic, batch["avail"][:, :, 0])] * 5, 0.1, 0.5)
    torch.testing.assert_close(spiked[..., 0][live], values[..., 0][live])
    # evaluation: every chosen action is available, or SMACBatch.step raises
    win_rate, _ = inspo_smac.evaluate([policy] * 5, "2s3z", 8, False, 0, torch.Generator().manual_seed(0), "cpu")
    assert 0 <= win_rate <= 1


def test_sc2_evaluation_plays_smacs_interface_like_the_batched_simulator(monkeypatch):
    """--env-backend sc2 evaluates through SMAC's StarCraft2Env API one episode at a time; with the built-in
    simulator's twin of that API standing in for SMAC, one battle of a seed gives the batched evaluation's
    numbers exactly, greedy or sampled with the same generator."""
    from envs.smac import StarCraft2Env

    install_fake_smac(monkeypatch, StarCraft2Env)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        policies = [inspo_smac.RecurrentPolicy(80 + 11 + 5, 11, 16) for _ in range(5)]
    for seed, greedy in ((3, True), (4, False)):
        batched, sc2 = (
            inspo_smac.evaluate(policies, "2s3z", 1, greedy, seed, torch.Generator().manual_seed(0), "cpu", backend)
            for backend in ("builtin", "sc2")
        )
        assert sc2 == batched and batched[1] > 0, (seed, batched, sc2)


def test_tiny_run_leaves_its_logs_checkpoints_and_summary(tmp_path, scripted_file, monkeypatch, fake_wandb, capsys):
    """The TensorBoard scalars the issue names at every --eval-interval, a checkpoint at every
    --checkpoint-interval and at the end, the summary's fields, and the advantages reaching the
    semi-greedy order (without them it would always start with agent 0). Evaluations: BC and the final
    policies play the same --final-eval-episodes battles, the periodic ones --eval-episodes battles of
    seeds of their own; their numbers are what the history, TensorBoard and the summary report."""
    saved, orders = [], []

    def save_checkpoint(path, state):
        saved.append(state["iteration"])
        return real["save_checkpoint"](path, state)

    def update_order(args, n_agents, rng, advantages=None):
        orders.append(advantages)
        return real["update_order"](args, n_agents, rng, advantages)

    real = install_spies(monkeypatch, inspo_smac, save_checkpoint, update_order)
    # (policies, map, episodes, greedy, seed, generator, device, backend)
    evaluations = record_calls(monkeypatch, inspo_smac, "evaluate")
    not_a_dir = tmp_path.parent / "not_a_dir"
    not_a_dir.write_text("")  # with --dataset-file the cache directory is never used, so it is not checked
    with global_rngs_untouched():  # every draw from the run's own generators
        summary = inspo_smac.main(
            tiny_args(
                tmp_path,
                scripted_file,
                num_updates=5,
                eval_interval=2,
                checkpoint_interval=2,
                update_order="semi-greedy",
                cache_dir=str(not_a_dir),
                track=True,
                wandb_entity="e",
                progress=True,
            )
        )
    assert saved == [2, 4, 5]
    assert len(orders) == 5 and all(a is not None and len(a) == 5 for a in orders)
    run_dir = os.path.join(tmp_path, os.listdir(tmp_path)[0])
    assert_tracked(fake_wandb, run_dir, "inspo", "e")
    scalars = tensorboard_scalars(run_dir)
    for tag in (
        "eval/win_rate",
        "eval/return",
        "charts/alpha",
        "charts/beta",
        "charts/kl",
        "losses/critic_loss",
        "losses/actor_loss",
    ):
        assert steps(scalars[tag]) == [2, 4, 5], tag
    assert steps(scalars["losses/bc_loss"]) == [0]
    assert scalars["eval/final_win_rate"] == [(5, pytest.approx(summary["final_win_rate"]))]
    assert_hyperparameters(run_dir, summary)  # the arguments' table (CleanRL's text card)
    assert [h[0] for h in summary["history"]] == [2, 4, 5] and summary["num_updates"] == 5
    assert summary["best_win_rate"] == max(h[1] for h in summary["history"])
    assert summary["args"]["update_order"] == "semi-greedy" and (summary["map"], summary["dataset"]) == (
        "2s3z",
        "medium",
    )
    seed = 50_000_000  # --seed 0's evaluation battles, far from every dataset's and QMIX's
    assert [call[1:5] + call[7:8] for call, _ in evaluations] == [("2s3z", 8, True, seed, "builtin")] + [
        ("2s3z", 4, True, seed + k, "builtin") for k in (2, 4, 5)
    ] + [("2s3z", 8, True, seed, "builtin")]
    results = [result for _, result in evaluations]
    assert (summary["bc_win_rate"], summary["bc_return"]) == results[0] and (
        summary["final_win_rate"],
        summary["final_return"],
    ) == results[-1]
    assert [tuple(h[1:3]) for h in summary["history"]] == results[1:4]
    assert [v for _, v in scalars["eval/win_rate"]] == pytest.approx([r[0] for r in results[1:4]])
    assert [v for _, v in scalars["eval/return"]] == pytest.approx([r[1] for r in results[1:4]])
    args = inspo_smac.Args()
    assert [v for _, v in scalars["charts/beta"]] == pytest.approx(
        [args.beta_0 * args.beta_decay**k for k in (2, 4, 5)]
    )
    times = [h[3] for h in summary["history"]]
    assert 0 < times[0] < times[1] < times[2] <= summary["wall_time_s"] < 600
    # the fields and the rest, none renamed or lost
    assert set(summary) == {
        "map",
        "dataset",
        "card",
        "eval_greedy",
        "env_backend",
        "final_win_rate",
        "final_return",
        "best_win_rate",
        "bc_win_rate",
        "bc_return",
        "history",
        "wall_time_s",
        "num_updates",
        "args",
        "critic",
        "critic_history",
    }
    # the critic, measured against the data's return-to-go at every evaluation: in the summary and in TensorBoard
    assert [c["iteration"] for c in summary["critic_history"]] == [2, 4, 5] and summary["critic"] == summary[
        "critic_history"
    ][-1]
    assert set(summary["critic"]) == {"iteration", "q", "return", "bias", "corr", "steps", "relative_bias", "buckets"}
    assert list(summary["critic"]["buckets"]) == ["t0-1", "t1-5", "t5-15", "t15-40", "t40-end"]
    history = summary["critic_history"]
    for tag, values in (
        ("charts/critic_corr", [c["corr"] for c in history]),
        ("charts/critic_relative_bias", [c["relative_bias"] for c in history]),
        ("charts/critic_bias_t0-1", [c["buckets"]["t0-1"]["bias"] for c in history]),
        ("charts/critic_corr_t5-15", [c["buckets"]["t5-15"]["corr"] for c in history]),
    ):
        assert [v for _, v in scalars[tag]] == pytest.approx(values, nan_ok=True), tag
    assert_summary_file(run_dir, summary)
    # the dataset it trained on, then the result a user reads; the bar on stderr
    printed, progress = capsys.readouterr()
    assert f"{os.path.basename(run_dir)[:40]}: 100%|" in progress and "5/5 [" in progress
    printed = printed.splitlines()
    assert (
        printed[0] == format_card(summary["card"])
        and printed[-1] == f"summary: {os.path.join(run_dir, 'summary.json')}"
    )
    critic = summary["critic"]
    assert printed[-3] == (
        f"critic (t >= 5, 64 dataset episodes): Q {critic['q']:.2f} against the return-to-go "
        f"{critic['return']:.2f} (bias {100 * critic['relative_bias']:+.0f} %), correlation {critic['corr']:.2f}"
    )
    assert printed[-2] == (
        f"smac 2s3z medium: win rate {summary['final_win_rate']:.3f}, return {summary['final_return']:.2f} "
        f"(greedy, 8 battles; best {summary['best_win_rate']:.3f}), BC {summary['bc_win_rate']:.3f} "
        f"({summary['bc_return']:.2f}), {summary['wall_time_s']:.1f} s"
    )


@pytest.mark.slow
def test_in_sample_actions_never_taken_keep_no_mass(tmp_path, scripted_file):
    """Only dataset actions enter Eq. 20: the actions the data never takes (stop, north, south,
    west) keep no more mass under π than under µ, which gives them almost none."""
    inspo_smac.main(
        tiny_args(tmp_path, scripted_file, num_updates=20, bc_updates=150, eval_interval=20, autotune_alpha=False)
    )
    state = torch.load(os.path.join(tmp_path, os.listdir(tmp_path)[0], "checkpoint.pt"), weights_only=False)
    assert set(state) == set(inspo_smac.CHECKPOINT_KEYS)  # what a resume checks for is what a run writes
    data = inspo_smac.episode_tensors(load_h5(scripted_file, "2s3z"), "cpu")
    batch = inspo_smac.episode_batch(data, torch.arange(24))
    in_dim = batch["inputs"].shape[-1]
    never = [1, 2, 3, 5]
    for i in range(5):
        mass = {}
        for key in ("behaviours", "policies"):
            model = inspo_smac.RecurrentPolicy(in_dim, 11, 64)
            model.load_state_dict(state[key][i])
            mass[key] = inspo_smac.unroll(model, batch, i).exp()[batch["valid"]][:, never].sum(-1)
        # seeds 0-4: µ's worst agent 0.022-0.028, π below µ by 0.0013-0.0020 (benchmarks/results/outcome_spread.md)
        assert mass["behaviours"].mean() < 0.04, (i, float(mass["behaviours"].mean()))
        assert mass["policies"].mean() <= mass["behaviours"].mean(), (i, {k: float(v.mean()) for k, v in mass.items()})


@pytest.mark.slow
def test_same_seed_same_numbers_resume_continues_exactly_only_from_its_own_configuration(
    tmp_path, scripted_file, capsys
):
    """A run of 6 iterations against the same seed stopped at iteration 3 (its checkpoint) and resumed
    to 6 in a new call: the same numbers (so also the same seed gives the same numbers: any draw not
    taken from the seeded, checkpointed generators would part the two). Stochastic evaluation, so that
    the evaluation's own generator must resume too."""
    quick = dict(bc_updates=10, eval_greedy=False)  # BC's recurrent unroll is most of a tiny run
    straight = inspo_smac.main(tiny_args(tmp_path / "a", scripted_file, **quick))
    first = inspo_smac.main(tiny_args(tmp_path / "c", scripted_file, num_updates=3, **quick))
    run_dir = os.path.join(tmp_path / "c", os.listdir(tmp_path / "c")[0])
    checkpoint = os.path.join(run_dir, "checkpoint.pt")
    assert torch.load(checkpoint, weights_only=False)["history"] == first["history"]
    summary = open(os.path.join(run_dir, "summary.json")).read()
    with pytest.raises(InputError, match="--hidden-dim"):  # a checkpoint of another configuration
        inspo_smac.main(tiny_args(tmp_path / "c", scripted_file, hidden_dim=64, resume=checkpoint, **quick))
    with pytest.raises(InputError, match="adds nothing"):  # nothing to add: the finished run stays as it was
        inspo_smac.main(tiny_args(tmp_path / "c", scripted_file, num_updates=3, resume=checkpoint, **quick))
    assert open(os.path.join(run_dir, "summary.json")).read() == summary
    # the clock goes on from the checkpoint's: a resumed run's times include its first sitting (Table 7)
    state = torch.load(checkpoint, weights_only=False)
    state["elapsed_s"] += 1e6
    torch.save(state, checkpoint)
    capsys.readouterr()
    resumed = inspo_smac.main(tiny_args(tmp_path / "c", scripted_file, resume=checkpoint, **quick))
    assert min(h[3] for h in resumed["history"][len(first["history"]) :]) > 1e6 and resumed["wall_time_s"] > 1e6
    printed, progress = capsys.readouterr()
    assert progress == ""  # --no-progress
    assert f"resumed {os.path.basename(run_dir)} at iteration 3\n" in printed and "(stochastic, 8 battles; " in printed
    assert first["num_updates"] == 3
    assert [h[:3] for h in resumed["history"]] == [h[:3] for h in straight["history"]]  # (iteration, win rate, return)
    assert resumed["final_return"] == straight["final_return"]
    a = torch.load(os.path.join(tmp_path / "a", os.listdir(tmp_path / "a")[0], "checkpoint.pt"), weights_only=False)
    b = torch.load(checkpoint, weights_only=False)
    for pa, pb in zip(a["policies"], b["policies"]):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    # the sampling generators live on the run's device, and a CPU generator cannot take a CUDA one's
    # state: a checkpoint written on a GPU is refused by name instead of failing inside torch
    b["device"], b["iteration"] = "cuda", 3
    torch.save(b, checkpoint)
    before = os.path.getmtime(checkpoint)
    with pytest.raises(InputError, match="was written on cuda, this run is on cpu.*--cuda"):
        inspo_smac.main(tiny_args(tmp_path / "c", scripted_file, resume=checkpoint, **quick))
    assert os.path.getmtime(checkpoint) == before
