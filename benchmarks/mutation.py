"""Mutation score of the three scripts and envs/: how many planted one-token bugs the tests catch.

mutmut 3 (configured in pyproject.toml) writes every mutant of inspo_matrix.py, inspo_bridge.py,
inspo_smac.py and envs/ (about 9,400: every operator, constant, string, call argument and
assignment inside a function), then runs, for each mutant, the tests that call the mutated function
(recorded in one clean run of the suite), stopping at the first failure. The whole population
costs days of CPU on 2 cores, so this script measures a seeded uniform random sample of it and
reports the score with a 95 % Wilson interval: the estimate of the score over all mutants.

A surviving mutant is either a missing test or a mutant no test should catch: equivalent (same
behaviour, e.g. `<` → `<=` on a value that is never equal) or not worth a test (a message's
wording). benchmarks/results/mutation_notes.json holds one sentence per survivor judged so;
equivalent ones leave the denominator, as the issue defines the score.

    pip install mutmut==3.8.1
    python benchmarks/mutation.py --sample 60 --seed 0 --workers 2    # about 1.5 h on 2 cores
    python benchmarks/mutation.py --collect --dir CHECKOUT             # read a run made there by hand
    python benchmarks/mutation.py --report-only                        # rebuild the report

The sample of n is the first n of the seeded draw (random.sample's prefix property), so a run with
--sample 60 measures the first 60 mutants a run with --sample 100 would.

Run on demand, not in CI. Writes benchmarks/results/mutation_results_seed<SEED>.json, and mutation.md
from every seed measured so far.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import math
import os
import random
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
NOTES = RESULTS / "mutation_notes.json"
OUT_MD = RESULTS / "mutation.md"
# mutmut counts timeouts as caught; a crash is caught too
KILLED = {
    "killed",
    "timeout",
    "segfault",
    "killed by its modules' tests",
}
# mutmut's per-function selection leaves out the end-to-end tests (marked slow) and cannot see calls made in
# a subprocess (the command-line tests): a mutant it does not kill gets the whole test modules that exercise
# its file, run with the mutant switched on (MUTANT_UNDER_TEST), stopping at the first failure.
MODULE_TESTS = {  # fastest first: the run stops at the first failing test
    "inspo_matrix.py": ["tests/test_bad_inputs.py", "tests/test_loop_units.py", "tests/test_matrix.py"],
    "inspo_bridge.py": ["tests/test_bad_inputs.py", "tests/test_loop_units.py", "tests/test_bridge.py"],
    "inspo_smac.py": ["tests/test_bad_inputs.py", "tests/test_smac_units.py", "tests/test_smac_inspo.py"],
    "envs/matrix.py": ["tests/test_bad_inputs.py", "tests/test_fuzz_envs.py", "tests/test_matrix.py"],
    "envs/bridge.py": ["tests/test_bad_inputs.py", "tests/test_fuzz_envs.py", "tests/test_bridge.py"],
    "envs/alberdice.py": [
        "tests/test_alberdice.py",
        "tests/test_bad_inputs.py",
        "tests/test_bridge.py",
        "tests/test_matrix.py",
    ],
    "envs/smac.py": [
        "tests/test_smac.py",
        "tests/test_fuzz_envs.py",
        "tests/test_smac_data.py",
        "tests/test_smac_inspo.py",
    ],
    "envs/smac_data.py": ["tests/test_bad_inputs.py", "tests/test_smac_data.py", "tests/test_smac_inspo.py"],
    "envs/__init__.py": [
        "tests/test_bad_inputs.py",
        "tests/test_matrix.py",
        "tests/test_bridge.py",
        "tests/test_smac_inspo.py",
        "tests/test_smac_data.py",
    ],
}


def generate_mutants(checkout: Path) -> None:
    """Write mutants/ (mutmut's copy of the sources with every mutant behind a switch)."""
    shutil.rmtree(checkout / "mutants", ignore_errors=True)
    code = (
        "import os, mutmut.__main__ as m; m.set_mutant_under_test('mutant_generation'); os.makedirs('mutants');"
        "m.copy_src_dir(); m.copy_also_copy_files(); m.setup_source_paths(); m.create_mutants(1)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=checkout, check=True, stdout=subprocess.DEVNULL)


def read_meta(checkout: Path) -> dict[str, int | None]:
    """Every mutant's exit code (None: not run), from mutmut's files."""
    return {
        name: code
        for meta in (checkout / "mutants").rglob("*.meta")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items()
    }


def draw(names: list[str], n: int, seed: int) -> list[str]:
    return sorted(random.Random(seed).sample(sorted(names), min(n, len(names))))


def run_module_tests(name: str, checkout: Path, files: list[str] | None = None, timeout: float = 900) -> str:
    """'killed by its modules' tests', 'timeout' (also a kill) or 'survived' when they pass."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MUTANT_UNDER_TEST=name)
    files = files or MODULE_TESTS[file_of(name)]
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *files]
    try:
        code = subprocess.run(
            command, cwd=checkout / "mutants", env=env, capture_output=True, timeout=timeout
        ).returncode
    except subprocess.TimeoutExpired:
        return "timeout"
    return "killed by its modules' tests" if code in (1, 3) else "survived"  # as mutmut reads pytest's exit codes


def diff_of(name: str, checkout: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=checkout, capture_output=True, text=True)
    return "\n".join(
        line
        for line in out.stdout.splitlines()[1:]
        if line.startswith(("+", "-")) and not line.startswith(("+++", "---"))
    )


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def file_of(name: str) -> str:
    module = name.split(".x_")[0].split(".xǁ")[0]
    return module.replace(".", "/") + ("/__init__.py" if module == "envs" else ".py")


def report(results: dict) -> str:
    notes = json.loads(NOTES.read_text()) if NOTES.exists() else {}
    sample = results["mutants"]
    survivors = {n: m for n, m in sample.items() if m["status"] not in KILLED}
    equivalent = [n for n in survivors if notes.get(n, {}).get("verdict") == "equivalent"]
    killed = sum(m["status"] in KILLED for m in sample.values())
    counted = len(sample) - len(equivalent)
    lo, hi = wilson(killed, counted)
    lines = [
        f"## The sample of seed {results['seed']}",
        "",
        f"Generated by `python benchmarks/mutation.py` on {results['date']} (mutmut {results['mutmut']}, "
        f"{results['workers']} workers). Population: {results['population']} mutants of "
        "the three scripts and `envs/` (pyproject.toml); measured: a uniform random sample of "
        f"{len(sample)} (seed {results['seed']}), each against the tests that call its function "
        f"(`pytest_add_cli_args_test_selection` in pyproject.toml: {results['selection']}); a mutant those miss then "
        "gets the whole test modules that exercise its file (`MODULE_TESTS`: the end-to-end runs marked slow and the "
        "command-line tests, whose calls mutmut cannot trace, included)"
        + (
            f"; mutmut's run was stopped before {results['unit_layer_unchecked']} of the sample, which went straight "
            "to "
            "the whole test modules"
            if results.get("unit_layer_unchecked")
            else ""
        )
        + ".",
        "",
        f"**Score: {killed} / {counted} = {100 * killed / max(counted, 1):.1f} % of the non-equivalent mutants "
        f"killed** (95 % Wilson interval {100 * lo:.1f}–{100 * hi:.1f} % for the whole population); "
        f"{len(equivalent)} equivalent mutants left out of the denominator.",
        "",
        *([results["note"], ""] if results.get("note") else []),
        "| file | sampled | killed by the unit layer | killed by the whole test modules | survived, equivalent | "
        "survived, not worth a test | survived, unjudged |",
        "|---|---|---|---|---|---|---|",
    ]
    for path in sorted({file_of(n) for n in sample}):
        names = [n for n in sample if file_of(n) == path]
        verdicts = [notes.get(n, {}).get("verdict") for n in names if n in survivors]
        slow = sum(sample[n]["status"] == "killed by its modules' tests" for n in names)
        lines.append(
            f"| `{path}` | {len(names)} | {sum(sample[n]['status'] in KILLED for n in names) - slow} | {slow} | "
            f"{verdicts.count('equivalent')} | {verdicts.count('not worth a test')} | "
            f"{sum(v is None for v in verdicts)} |"
        )
    lines += [
        "",
        "### Survivors",
        "",
        "Each with its diff and, where judged, the verdict. Unjudged survivors count as missed bugs.",
        "",
    ]
    for name in sorted(survivors):
        note = notes.get(name)
        verdict = f"**{note['verdict']}**: {note['why']}" if note else "**unjudged**"
        lines += [
            f"- `{name}` ({survivors[name]['status']}): {verdict}",
            "",
            "  ```diff",
            *("  " + line for line in survivors[name]["diff"].splitlines()),
            "  ```",
            "",
        ]
    return "\n".join(lines) + "\n"


def write_report() -> None:
    """mutation.md: every sample measured, in seed order."""
    runs = sorted(
        (json.loads(p.read_text()) for p in RESULTS.glob("mutation_results_seed*.json")), key=lambda r: r["seed"]
    )
    lines = [
        "# Mutation score",
        "",
        "Each sample is measured twice. The first pass runs the suite as it stood when the sample was drawn: "
        "independent of the sample, it is the unbiased estimate of the suite's score. Its real gaps then get tests, "
        "and the second pass (each section's **Score**) reruns the survivors against them, which flatters the suite.",
        "",
        "| sample | suite | first pass (unbiased) | 95 % Wilson | after its tests |",
        "|---|---|---|---|---|",
    ]
    for r in runs:
        first = r.get("first_pass")
        if first:
            lo, hi = wilson(first["killed"], first["counted"])
            share = 100 * first["killed"] / first["counted"]
            cells = f"{first['killed']} / {first['counted']} = {share:.1f} % | {100 * lo:.1f}–{100 * hi:.1f} %"
        else:
            cells = "– | –"
        killed = sum(m["status"] in KILLED for m in r["mutants"].values())
        lines.append(
            f"| seed {r['seed']} | {first['suite'] if first else '–'} | {cells} | {killed} killed of "
            f"{len(r['mutants'])} |"
        )
    OUT_MD.write_text("\n".join(lines) + "\n\n" + "\n".join(report(r) for r in runs))
    print(f"wrote {OUT_MD}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=60, help="mutants measured (uniform, without replacement)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="mutants tested side by side")
    parser.add_argument("--collect", action="store_true", help="run nothing: read the results of `mutmut run` in --dir")
    parser.add_argument(
        "--dir", type=Path, default=ROOT, help="the checkout where mutmut runs (mutants/ is written there)"
    )
    parser.add_argument(
        "--unit-layer-only", action="store_true", help="do not give the unit layer's survivors the whole test modules"
    )
    parser.add_argument(
        "--skip-baseline",
        action="store_true",
        help="rerun after a baseline that passed with these tests: skip the clean run of the test modules",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild mutation.md from mutation_results_seed*.json"
    )
    args = parser.parse_args()
    if args.report_only:
        write_report()
        return
    if args.sample < 1 or args.workers < 1:
        sys.exit(f"error: --sample {args.sample} / --workers {args.workers}: accepted: integers >= 1")
    if importlib.util.find_spec("mutmut") is None:
        sys.exit("error: mutmut is not installed; accepted: pip install mutmut==3.8.1")
    if not args.collect:
        generate_mutants(args.dir)
    meta = read_meta(args.dir)
    sample = draw(list(meta), args.sample, args.seed)
    if not args.collect:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.workers), *sample],
            cwd=args.dir,
            env=env,
            check=False,
        )
        meta = read_meta(args.dir)
    import tomllib

    from mutmut.stats import status_by_exit_code

    selection = tomllib.loads((args.dir / "pyproject.toml").read_text())["tool"]["mutmut"].get(
        "pytest_add_cli_args_test_selection", ["tests/"]
    )
    statuses = {name: status_by_exit_code[meta[name]] for name in sample}
    if not args.unit_layer_only:
        # the tests of this checkout (mutmut copied them when its run began; tests added since count too),
        # which must pass without a mutant, or every kill is void
        shutil.copytree(ROOT / "tests", args.dir / "mutants" / "tests", dirs_exist_ok=True)
        files = sorted({f for files in MODULE_TESTS.values() for f in files}) if not args.skip_baseline else []
        with ThreadPoolExecutor(args.workers) as pool:
            clean = dict(zip(files, pool.map(lambda f: run_module_tests("", args.dir, [f], timeout=3600), files)))
        if set(clean.values()) - {"survived"}:
            sys.exit(f"error: tests fail without a mutant ({clean}); fix them first")
        unchecked = sum(status == "not checked" for status in statuses.values())
        # kills by the module tests are kept in mutants/ so that a rerun (after new tests) retries only the rest
        done_path = args.dir / "mutants" / "module_test_kills.json"
        done = json.loads(done_path.read_text()) if done_path.exists() else {}
        missed = [name for name in sample if statuses[name] not in KILLED and name not in done]
        with ThreadPoolExecutor(args.workers) as pool:
            for name, status in zip(missed, pool.map(lambda n: run_module_tests(n, args.dir), missed)):
                if status != "survived":
                    done[name] = status
                    done_path.write_text(json.dumps(done, indent=1))
                print(f"{name}: {status}", flush=True)
        statuses.update({name: done[name] for name in sample if name in done and statuses[name] not in KILLED})
        statuses = {name: "survived" if status == "not checked" else status for name, status in statuses.items()}
    results = {
        "unit_layer_unchecked": unchecked if not args.unit_layer_only else 0,
        "date": datetime.date.today().isoformat(),
        "mutmut": importlib.metadata.version("mutmut"),
        "workers": args.workers,
        "seed": args.seed,
        "population": len(meta),
        "selection": " ".join(selection),
        "mutants": {
            name: {"status": statuses[name], "diff": "" if statuses[name] in KILLED else diff_of(name, args.dir)}
            for name in sample
        },
    }
    out = RESULTS / f"mutation_results_seed{args.seed}.json"
    if out.exists():  # a second pass keeps the first pass's figures and the note written about it
        earlier = json.loads(out.read_text())
        results.update({k: earlier[k] for k in ("first_pass", "note") if k in earlier})
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(out)
    write_report()


if __name__ == "__main__":
    main()
