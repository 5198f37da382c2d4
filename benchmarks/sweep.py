"""One sweep runner for every benchmark: a grid of (script, flags) as resumable runs.

A run is one call of a single-file script's `main` (inspo_matrix, inspo_bridge or inspo_smac)
with one set of flags, in a worker process with one thread. Its summary is written to
<results-dir>/<run name>/summary.json; a run whose summary exists is skipped, so a sweep killed
half-way is continued by running it again. A run killed in
the middle resumes from its last checkpoint when its script has `--resume`. The benchmark
scripts build their tables and PNGs from the summaries alone.

Two engines run the same runs: a local process pool (`--workers N`, default the cores), or Ray
(`--ray-address ADDRESS` of an existing cluster, or `local` to start one on this machine; one
CPU per run, one GPU with `--cuda`). Ray is imported only then. In both, the driver writes the
summaries, so workers need no shared file system.

As a module (what benchmarks/matrix.py, bridge.py and smac.py do):

    runs = [sweep.Run(f"xor_a/seed{s}", "inspo_matrix", {"game": "xor", "dataset": "a", "seed": s}) for s in range(5)]
    summaries = sweep.run_grid(runs, "runs/benchmarks/matrix", workers=2)

As a CLI, a product of flag values times seeds:

    python benchmarks/sweep.py --script inspo_matrix --set game=xor,mne dataset=a --seeds 0 1 \
        --results-dir runs/sweep_demo
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib
import itertools
import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from envs import InputError, check_writable_dir  # noqa: E402  (after the sys.path line)

SCRIPTS = ("inspo_matrix", "inspo_bridge", "inspo_smac")
# Flags the runner owns: every run gets its own runs directory, no progress bar, and --cuda from the sweep.
RUNNER_FLAGS = {"runs_dir", "progress", "resume", "cuda"}
DEFAULT_WORK_DIR = os.path.join(ROOT, "runs", "sweep")


@dataclass(frozen=True)
class Run:
    name: str
    """where the run's summary goes, relative to the results directory (e.g. "2s3z/mixed/seed0")"""
    script: str
    """the single-file script: inspo_matrix, inspo_bridge or inspo_smac"""
    flags: dict = field(default_factory=dict, hash=False)
    """the script's Args fields and their values (seed included)"""


def check_grid(runs: list[Run]) -> None:
    """Reject a grid with an unknown script, an unknown flag or a repeated run name before anything runs."""
    names = set()
    for run in runs:
        if run.script not in SCRIPTS:
            raise InputError(f"unknown script {run.script!r} in the grid; accepted: {', '.join(SCRIPTS)}")
        fields = {f.name for f in dataclasses.fields(importlib.import_module(run.script).Args)}
        for flag in run.flags:
            if flag not in fields:
                raise InputError(
                    f"unknown flag {flag!r} for {run.script} in run {run.name!r}; "
                    f"accepted: the fields of {run.script}.Args"
                )
            if flag in RUNNER_FLAGS:
                raise InputError(f"flag {flag!r} in run {run.name!r} is set by the runner; accepted: any other field")
        if not run.name or os.path.isabs(run.name) or ".." in run.name.split("/"):
            raise InputError(f"run name {run.name!r} is not accepted; accepted: a relative path without '..'")
        if run.name in names:
            raise InputError(f"run name {run.name!r} appears twice in the grid; accepted: one run per name")
        names.add(run.name)


def summary_path(results_dir: str, run: Run) -> str:
    return os.path.join(results_dir, run.name, "summary.json")


def read_summary(results_dir: str, run: Run) -> dict | None:
    path = summary_path(results_dir, run)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_summary(results_dir: str, run: Run, summary: dict) -> None:
    path = summary_path(results_dir, run)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(path + ".tmp", path)  # whole or not at all: a kill never leaves half a summary


def latest_checkpoint(work_dir: str) -> str | None:
    paths = glob.glob(os.path.join(work_dir, "*", "checkpoint.pt"))
    return max(paths, key=os.path.getmtime) if paths else None


def execute(run: Run, work_dir: str, cuda: bool = False) -> tuple[str, dict | None, str | None]:
    """Run one grid point in this process with one thread: (name, summary or None, error line or None).
    The script's own output goes to <work-dir>/<run name>/log.txt."""
    os.makedirs(os.path.join(work_dir, run.name), exist_ok=True)
    with (
        open(os.path.join(work_dir, run.name, "log.txt"), "a") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        return _execute(run, work_dir, cuda)


def _execute(run: Run, work_dir: str, cuda: bool) -> tuple[str, dict | None, str | None]:
    start = time.time()
    try:
        import torch

        torch.set_num_threads(1)
        module = importlib.import_module(run.script)
        fields = {f.name for f in dataclasses.fields(module.Args)}
        runs_dir = os.path.join(work_dir, run.name)
        extra = {"cuda": cuda} if "cuda" in fields else {}
        checkpoint = latest_checkpoint(runs_dir) if "resume" in fields else None
        if checkpoint is not None:  # killed in the middle: continue from the last checkpoint
            try:
                summary = module.main(
                    module.Args(**run.flags, runs_dir=runs_dir, progress=False, resume=checkpoint, **extra)
                )
                return run.name, stamp(summary, start), None
            except InputError as error:
                print(f"sweep: {run.name}: not resumed from {checkpoint} ({error}); starting again", file=sys.stderr)
        summary = module.main(module.Args(**run.flags, runs_dir=runs_dir, progress=False, **extra))
        return run.name, stamp(summary, start), None
    except InputError as error:
        return run.name, None, f"error: {error}"
    except Exception as error:  # reported with the others' results; never stops the sweep
        where = traceback.extract_tb(error.__traceback__)[-1]
        return run.name, None, f"{type(error).__name__}: {error} ({os.path.basename(where.filename)}:{where.lineno})"


def stamp(summary: dict, start: float) -> dict:
    """What the runner measures around a run: its wall time with the worker's imports, and the peak
    resident memory of the worker process so far (an upper bound on the run's own)."""
    import resource

    summary["process_wall_s"] = time.time() - start
    summary["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    return summary


def check_ray_address(address: str) -> None:
    """One line naming an address nobody answers at, instead of Ray's minutes of retries."""
    if address in ("local", "auto"):
        return
    host_port = address.split("://", 1)[-1]
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host or host_port, int(port) if port.isdigit() else 6379), timeout=5).close()
    except (OSError, ValueError) as error:
        raise InputError(
            f"--ray-address {address!r} cannot be reached ({error}); accepted: the address `ray start --head` "
            "printed (host:port or ray://host:10001), or local"
        ) from None


def exit_with_parent(parent_pid: int) -> None:
    """A worker's initializer: the worker ends itself once the driver is gone, however the driver ended
    (even kill -9), so no run is left running orphaned."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def stop_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)  # SIGTERM ends the driver as Ctrl-C does: through run_grid's clean-up


def run_grid(
    runs: list[Run],
    results_dir: str,
    workers: int | None = None,
    ray_address: str | None = None,
    cuda: bool = False,
    work_dir: str = DEFAULT_WORK_DIR,
    progress: bool = True,
) -> dict[str, dict]:
    """Run every run of the grid that has no summary yet; return {name: summary} of all runs that have one.
    Failed runs are reported on stderr (one line each) and left without a summary."""
    check_grid(runs)
    workers = os.cpu_count() if workers is None else workers
    if workers < 1:
        raise InputError(f"--workers {workers} is not accepted; accepted: an integer >= 1")
    check_writable_dir("results_dir", results_dir)  # checked before any long work
    check_writable_dir("work_dir", work_dir)
    if ray_address is not None:
        check_ray_address(ray_address)
    todo = [run for run in runs if read_summary(results_dir, run) is None]
    from tqdm import tqdm

    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc="runs", disable=not progress, file=sys.stderr)
    failures = []

    def finished(name: str, summary: dict | None, error: str | None) -> None:
        if summary is not None:
            write_summary(results_dir, by_name[name], summary)
        else:
            failures.append(name)
            tqdm.write(f"sweep: run {name} failed: {error}", file=sys.stderr)
        bar.update()

    by_name = {run.name: run for run in runs}
    if todo and ray_address is None:
        # spawn: fresh interpreters (no inherited torch threads), each reused for many runs (the imports
        # cost about 2 s, as much as a matrix run); every script seeds its own generators, so reuse changes no number
        pool = ProcessPoolExecutor(
            min(workers, len(todo)),
            mp_context=multiprocessing.get_context("spawn"),
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )
        in_main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
        previous = signal.signal(signal.SIGTERM, stop_on_sigterm) if in_main_thread else None
        try:
            futures = {pool.submit(execute, run, work_dir, cuda): run.name for run in todo}
            for future in as_completed(futures):
                try:
                    finished(*future.result())
                except Exception as error:  # the worker process itself died (killed, out of memory)
                    finished(futures[future], None, f"worker process died ({type(error).__name__}: {error})")
        except BaseException:  # Ctrl-C or SIGTERM: end the running runs too (they resume from their checkpoints)
            for child in multiprocessing.active_children():
                child.terminate()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        pool.shutdown()
    elif todo:
        import ray

        if not ray.is_initialized():
            runtime_env = {"env_vars": {"PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}}
            if ray_address == "local":
                ray.init(num_cpus=workers, runtime_env=runtime_env, include_dashboard=False, log_to_driver=False)
            else:  # the cluster's nodes get this repository as their working directory
                ray.init(
                    address=ray_address,
                    runtime_env={
                        **runtime_env,
                        "working_dir": ROOT,
                        "excludes": ["runs/", ".cache/", ".git/", "*.h5", ".ci-venv/"],
                    },
                )
        remote = ray.remote(num_cpus=1, num_gpus=1 if cuda else 0, max_retries=0)(execute)
        pending = [remote.remote(run, work_dir, cuda) for run in todo]
        names = dict(zip(pending, (run.name for run in todo)))
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                finished(*ray.get(done[0]))
            except Exception as error:  # the task's worker died
                finished(names[done[0]], None, f"Ray task died ({type(error).__name__})")
    bar.close()
    if failures:
        print(f"sweep: {len(failures)} of {len(todo)} runs failed: {', '.join(failures)}", file=sys.stderr)
    return {run.name: s for run in runs if (s := read_summary(results_dir, run)) is not None}


# ---------------------------------------------------------------------------------------
# CLI: the product of --set values times --seeds
# ---------------------------------------------------------------------------------------
@dataclass
class Options:
    script: str
    """the single-file script: inspo_matrix, inspo_bridge or inspo_smac"""
    set: list[str] = field(default_factory=list)
    """flag=value1,value2 ... (space-separated): the grid is the product of all of them (values parsed as JSON when
    they can be)"""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    """training seeds: every grid point runs with each"""
    results_dir: str = os.path.join(ROOT, "runs", "sweep_results")
    """where each run's summary.json goes (<results-dir>/<flag=value/...>/seed<N>/summary.json)"""
    work_dir: str = DEFAULT_WORK_DIR
    """where the runs write TensorBoard logs and checkpoints"""
    workers: int | None = None
    """runs in parallel on this machine, one thread each (default: the cores)"""
    ray_address: str | None = None
    """run on a Ray cluster at this address (`ray start --head` prints it), or `local` to start one here"""
    cuda: bool = False
    """give each run a GPU (--cuda of the scripts; one GPU per Ray task)"""


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def grid_runs(options: Options) -> list[Run]:
    axes = []
    for item in options.set:
        flag, sep, values = item.partition("=")
        if not sep or not flag or not values:
            raise InputError(f"--set {item!r} is not accepted; accepted: flag=value[,value...]")
        axes.append([(flag.strip().replace("-", "_"), parse_value(v)) for v in values.split(",")])
    runs = []
    for point in itertools.product(*axes):
        for seed in options.seeds:
            name = "/".join(f"{flag}={value}" for flag, value in point) + ("/" if point else "") + f"seed{seed}"
            runs.append(Run(name, options.script, {**dict(point), "seed": seed}))
    return runs


def main(options: Options) -> dict[str, dict]:
    start = time.time()
    runs = grid_runs(options)
    summaries = run_grid(
        runs, options.results_dir, options.workers, options.ray_address, options.cuda, options.work_dir
    )
    print(
        f"sweep: {len(summaries)} of {len(runs)} runs have a summary in {options.results_dir} "
        f"({time.time() - start:.0f} s)"
    )
    return summaries


if __name__ == "__main__":
    import tyro

    cli_options = tyro.cli(Options)
    try:
        summaries = main(cli_options)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(0 if len(summaries) == len(grid_runs(cli_options)) else 1)
