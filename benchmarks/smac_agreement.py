"""Which of the data's actions a finished SMAC run's models would take, teacher-forced on its dataset.

For each finished run of benchmarks/smac.py (its run directory holds the final checkpoint.pt), every
decision of the run's dataset (an agent with two or more available actions, before the episode's end)
is shown to the models with the data's own history (the recurrent policies unrolled over the whole
episode, the critics on the state), and we count how often each model's most probable or most
valued available action is the action the data took:

    π        the final policy, argmax log π^i(·|τ^i_t)
    µ        the behaviour model (BC), argmax log µ^i(·|τ^i_t)
    Q        the final local critic alone, argmax Q^i(s_t, ·)
    µe^{Q/α} the in-sample target of Eq. 20 (β = 0), argmax log µ^i + Q^i/α

A mixed dataset is split into its medium half and its expert half (the first and the last 2500
episodes: envs.smac_data builds it as [medium; expert]). Also: the share of agent-episodes in which π
takes the data's action at every decision, the mean KL(π‖µ) per decision, and the final actor weights
of Eq. 20 on the data's actions (w = exp((A − β log µ^i(a^i))/(α+β)) at the final α and β,
A = Q̄^i(s,a^i) − Σ_a π^i Q̄^i, Q̄ the target critic as in the actor's loss):
the share of decisions at the clip (--weight-clip) and their relative effective sample size
(Σw)² / (n Σw²), which is 1 when every weight is equal (the actor is then BC on its resampled data).

    python benchmarks/smac_agreement.py RUN_DIR [RUN_DIR ...] [--out benchmarks/results/smac_agreement.md]

Runs on the CPU; the dataset is the run's own (its --dataset-file, or the cached generated one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import inspo_smac  # noqa: E402  (after the sys.path line)
from benchmarks.smac_greedy import load_models, write_report  # noqa: E402
from envs.smac_data import map_sizes  # noqa: E402

MODELS = ("pi", "mu", "q", "target")
LABELS = {"pi": "π", "mu": "µ", "q": "Q", "target": "µe^{Q/α}"}


def load(run_dir: str):
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    args = inspo_smac.Args(**summary["args"])
    checkpoint = torch.load(os.path.join(run_dir, "checkpoint.pt"), map_location="cpu", weights_only=False)
    sizes = map_sizes(args.map)
    in_dim = sizes["obs_shape"] + sizes["n_actions"] + sizes["n_agents"]
    models = {key: load_models(checkpoint, key, in_dim, sizes["n_actions"], args.rnn_hidden) for key in ("policies", "behaviours")}
    for key in ("critics", "target_critics"):
        models[key] = []
        for weights in checkpoint[key]:
            critic = inspo_smac.Critic(sizes["state_shape"], sizes["n_actions"], args.hidden_dim)
            critic.load_state_dict(weights)
            models[key].append(critic.eval())
    return summary, args, models, checkpoint["alpha"], checkpoint["beta"]


@torch.no_grad()
def agreement(data: dict, episodes: np.ndarray, models: dict, alpha: float, weight_clip: float, beta: float = 0.0,
              chunk: int = 250) -> dict:
    """Counts over the decisions of the given episodes (see the module's docstring)."""
    hits = dict.fromkeys(MODELS, 0)
    decisions, all_right, agent_episodes, kl = 0, 0, 0, 0.0
    weight_sum, weight_square_sum, clipped = 0.0, 0.0, 0
    for start in range(0, len(episodes), chunk):
        batch = inspo_smac.episode_batch(data, torch.as_tensor(episodes[start:start + chunk]))
        for i in range(batch["actions"].shape[2]):
            taken, avail = batch["actions"][:, :, i], batch["avail"][:, :, i]
            decide = batch["valid"] & (avail.sum(-1) >= 2)
            log_pi = inspo_smac.unroll(models["policies"][i], batch, i)
            log_mu = inspo_smac.unroll(models["behaviours"][i], batch, i)
            q = models["critics"][i](batch["state"]).masked_fill(~avail, -1e9)
            scores = {"pi": log_pi, "mu": log_mu, "q": q, "target": log_mu + q / alpha}
            for name, score in scores.items():
                hits[name] += int(((score.argmax(-1) == taken) & decide).sum())
            all_right += int(((log_pi.argmax(-1) == taken) | ~decide).all(1).sum())
            agent_episodes += len(taken)
            decisions += int(decide.sum())
            kl += float(((log_pi.exp() * (log_pi - log_mu)).sum(-1) * decide).sum())
            q_target = models["target_critics"][i](batch["state"])  # the actor's critic (Eq. 20)
            advantage = inspo_smac.taken(q_target, batch, i) - (log_pi.exp() * q_target).sum(-1)
            log_w = ((advantage - beta * inspo_smac.taken(log_mu, batch, i)) / (alpha + beta))[decide]
            weights = log_w.clamp(max=np.log(weight_clip)).exp().double()
            weight_sum, weight_square_sum = weight_sum + float(weights.sum()), weight_square_sum + float((weights ** 2).sum())
            clipped += int((log_w >= np.log(weight_clip)).sum())
    return {**{name: hits[name] / decisions for name in MODELS}, "decisions": decisions,
            "pi_all_right": all_right / agent_episodes, "kl": kl / decisions, "clipped": clipped / decisions,
            "ess": weight_sum ** 2 / (decisions * weight_square_sum)}


def measure(run_dir: str) -> list[dict]:
    summary, args, models, alpha, beta = load(run_dir)
    arrays, _ = inspo_smac.load_dataset(args)
    data = inspo_smac.episode_tensors(arrays, "cpu")
    n = len(data["reward"])
    parts = {"medium half": np.arange(n // 2), "expert half": np.arange(n // 2, n)} if args.dataset == "mixed" and args.dataset_file is None \
        else {"all": np.arange(n)}
    return [{"map": args.map, "dataset": args.dataset, "seed": args.seed, "run": run_dir, "part": part, "alpha": alpha,
             "alpha_tuned": args.autotune_alpha,
             "final_win_rate": summary["final_win_rate"], **agreement(data, episodes, models, alpha, args.weight_clip, beta)}
            for part, episodes in parts.items()]


def report(rows: list[dict]) -> str:
    lines = ["# Teacher-forced agreement of finished SMAC runs with their data (benchmarks/smac_agreement.py)", "",
             "Over every decision of the run's dataset (two or more available actions), given the data's own history: the "
             "share at which each model's best available action is the data's action. π: the final policy; µ: BC; Q: the "
             "final local critic alone; µe^{Q/α}: the in-sample target of Eq. 20 at the final α. `all right`: agent-episodes "
             "in which π takes the data's action at every decision. KL: mean KL(π‖µ) per decision. Eq. 20's final weights "
             "w = min(exp((A − β log µ)/(α+β)), clip) on the data's actions: the share at the clip, and their relative effective sample size "
             "(Σw)²/(n Σw²) (1: all equal, the actor is BC on its resampled data).", "",
             "| run | seed | part | decisions | π | µ | Q | µe^{Q/α} | π all right | KL(π‖µ) | w at clip | ESS of w | α | final win rate |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['map']} {r['dataset']} | {r['seed']} | {r['part']} | {r['decisions']:,} | "
                     + " | ".join(f"{100 * r[m]:.1f} %" for m in MODELS)
                     + f" | {100 * r['pi_all_right']:.1f} % | {r['kl']:.3f} | {100 * r['clipped']:.1f} % | {r['ess']:.2f}"
                     f" | {r['alpha']:.3f} ({'auto' if r['alpha_tuned'] else 'fixed'}) | {r['final_win_rate']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories with checkpoint.pt and summary.json")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "smac_agreement.md"))
    options = parser.parse_args()
    torch.set_num_threads(1)
    rows = [row for run in options.runs for row in measure(run)]
    write_report(options.out, report(rows), rows)
    print(report(rows))


if __name__ == "__main__":
    main()
