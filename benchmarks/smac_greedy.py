"""Why a SMAC cell's greedy win rate can swing between evaluations while the policy hardly moves.

For each finished run of benchmarks/smac.py (its run directory holds the final checkpoint.pt), the
final policies π and the behaviour models µ play the script's own 320 evaluation battles (the same
simulator seeds as `final_win_rate`) greedily (CFCQL's protocol: argmax) and stochastically (sampled).
During the greedy battles every decision with two or more available actions records the margin
between its two most probable actions: where many decisions are near-ties, an imperceptible change of
the policy (KL of a few hundredths of a nat) flips argmaxes and, through the battle's dynamics, the
outcome; a sampled policy does not have that cliff.

    python benchmarks/smac_greedy.py RUN_DIR [RUN_DIR ...] [--perturb RUN_DIR ...] [--episodes 320]

A RUN_DIR is a directory with checkpoint.pt and summary.json (benchmarks/smac.py keeps them under
runs/sweep/MAP/DATASET/VARIANT/seedN/). Runs on the CPU, one thread per process.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import inspo_smac  # noqa: E402  (after the sys.path line)
from envs.smac_data import map_sizes  # noqa: E402

MARGINS = (0.05, 0.1, 0.2)
PERTURBATIONS = 8  # greedy evaluations of π with every weight scaled by (1 + 0.01 N(0, 1)), one noise draw each


class MarginRecorder(torch.nn.Module):
    """A policy that passes its log-probabilities through, recording the top-two margin of every real decision."""

    def __init__(self, policy: torch.nn.Module, margins: list):
        super().__init__()
        self.policy, self.margins = policy, margins

    def forward(self, inputs, avail, hidden=None):
        logp, hidden = self.policy(inputs, avail, hidden)
        choices = avail.sum(-1) >= 2  # a dead agent (no-op only) or a finished battle decides nothing
        top = logp.exp().topk(2, dim=-1).values
        self.margins.append((top[..., 0] - top[..., 1])[choices].flatten())
        return logp, hidden


def load_models(checkpoint: dict, key: str, in_dim: int, n_actions: int, hidden: int) -> list[torch.nn.Module]:
    models = []
    for weights in checkpoint[key]:
        model = inspo_smac.RecurrentPolicy(in_dim, n_actions, hidden)
        model.load_state_dict(weights)
        models.append(model.eval())
    return models


def perturbed(models: list[torch.nn.Module], scale: float, generator: torch.Generator) -> list[torch.nn.Module]:
    """Copies of the models with every weight multiplied by (1 + scale · N(0, 1))."""
    copies = [copy.deepcopy(model) for model in models]
    for model in copies:
        for weights in model.state_dict().values():  # in place: the state dict's tensors are the parameters
            weights.mul_(1 + scale * torch.randn(weights.shape, generator=generator))
    return copies


def measure(run_dir: str, episodes: int, perturb: bool) -> dict:
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    checkpoint = torch.load(os.path.join(run_dir, "checkpoint.pt"), map_location="cpu", weights_only=False)
    args = summary["args"]
    sizes = map_sizes(args["map"])
    in_dim = sizes["obs_shape"] + sizes["n_actions"] + sizes["n_agents"]
    eval_seed = 50_000_000 + 100_000 * args["seed"]  # inspo_smac.main's evaluation battles
    row = {"run": run_dir, "map": args["map"], "dataset": args["dataset"], "seed": args["seed"],
           "summary_final_win_rate": summary["final_win_rate"], "summary_bc_win_rate": summary["bc_win_rate"],
           "history": [round(h[1], 2) for h in summary["history"]]}
    with torch.no_grad():
        for key, name in (("policies", "pi"), ("behaviours", "mu")):
            models = load_models(checkpoint, key, in_dim, sizes["n_actions"], args["rnn_hidden"])
            margins: list[torch.Tensor] = []
            recorded = [MarginRecorder(m, margins) for m in models]
            row[f"{name}_greedy"], _ = inspo_smac.evaluate(recorded, args["map"], episodes, True, eval_seed, None, "cpu")
            generator = torch.Generator().manual_seed(args["seed"])
            row[f"{name}_stochastic"], _ = inspo_smac.evaluate(models, args["map"], episodes, False, eval_seed, generator, "cpu")
            gaps = torch.cat(margins).numpy()
            row[f"{name}_decisions"] = int(gaps.size)
            for m in MARGINS:
                row[f"{name}_below_{m}"] = float((gaps < m).mean())
            row[f"{name}_median_margin"] = float(np.median(gaps))
            if name == "pi" and perturb:
                noise = torch.Generator().manual_seed(args["seed"])
                row["pi_perturbed_greedy"] = [inspo_smac.evaluate(perturbed(models, 0.01, noise), args["map"], episodes, True,
                                                                  eval_seed, None, "cpu")[0] for _ in range(PERTURBATIONS)]
    return row


def report(rows: list[dict], episodes: int) -> str:
    lines = ["# Greedy and sampled evaluation of finished SMAC runs (benchmarks/smac_greedy.py)", "",
             f"Final policies π and behaviour models µ of finished benchmarks/smac.py runs, each on the run's own {episodes} "
             "evaluation battles: greedy (argmax, the protocol of Table 4) and stochastic (sampled) win rates, and, over the "
             "greedy battles' decisions with two or more available actions, the share whose two most probable actions are "
             f"within {', '.join(str(m) for m in MARGINS)} of each other in probability, and the median margin. "
             "`history`: the run's greedy win rate (32 battles) at each evaluation. `π perturbed`: greedy win rates of "
             f"{PERTURBATIONS} copies of π with every weight scaled by (1 + 0.01 N(0, 1)) (min / mean / max).", "",
             "| run | seed | history (greedy, 32 battles) | π greedy | π stochastic | µ greedy | µ stochastic | "
             + " | ".join(f"π decisions within {m}" for m in MARGINS) + " | π median margin | µ median margin | π perturbed |",
             "|---|---|---|---|---|---|---|---|" + "---|" * len(MARGINS) + "---|---|"]
    for r in rows:
        variant = r["run"].rstrip("/").split("/")[-3]  # runs/sweep/MAP/DATASET/VARIANT/seedN/RUN
        lines.append(f"| {r['map']} {r['dataset']} {variant} | {r['seed']} | {' '.join(f'{h:.2f}' for h in r['history'])} | {r['pi_greedy']:.3f} | "
                     f"{r['pi_stochastic']:.3f} | {r['mu_greedy']:.3f} | {r['mu_stochastic']:.3f} | "
                     + " | ".join(f"{100 * r[f'pi_below_{m}']:.1f} %" for m in MARGINS)
                     + f" | {r['pi_median_margin']:.3f} | {r['mu_median_margin']:.3f} | "
                     + (f"{min(p):.2f} / {np.mean(p):.2f} / {max(p):.2f} |" if (p := r.get("pi_perturbed_greedy")) else "– |"))
    return "\n".join(lines) + "\n"


def write_report(out: str, text: str, rows: list[dict]) -> None:
    """The markdown at `out` and the rows beside it as JSON (same name, .json), each written whole, then renamed."""
    rows_path = os.path.splitext(out)[0] + ".json"
    for path, write in ((out, lambda f: f.write(text)), (rows_path, lambda f: json.dump(rows, f, indent=1))):
        with open(path + ".tmp", "w") as f:
            write(f)
        os.replace(path + ".tmp", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories with checkpoint.pt and summary.json")
    parser.add_argument("--episodes", type=int, default=320, help="battles per evaluation (the script's final evaluation: 320)")
    parser.add_argument("--perturb", nargs="*", default=[], help="run directories (of those given) whose π is also evaluated perturbed")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results", "smac_greedy.md"))
    options = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for run in options.runs:
        for name in ("checkpoint.pt", "summary.json"):
            if not os.path.isfile(os.path.join(run, name)):
                sys.exit(f"error: {run!r} has no {name}; accepted: a finished run directory of benchmarks/smac.py")
        rows.append(measure(run, options.episodes, run in options.perturb))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "run"}), flush=True)
    write_report(options.out, report(rows, options.episodes), rows)
    print(f"wrote {options.out}")


if __name__ == "__main__":
    main()
