"""benchmarks/sweep.py: a grid of single-file runs, resumable, on a process pool or on Ray."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks import sweep
from conftest import ROOT, assert_cli_error, assert_one_line_error
from envs import InputError

pytestmark = pytest.mark.slow  # spawned workers: seconds per test, and invisible to mutmut's call tracing

# A tiny matrix run: a few seconds each.
TINY = {"game": "xor", "dataset": "b", "num_updates": 10, "bc_updates": 10, "final_eval_episodes": 32}
# What a run's summary holds that depends on the clock, not on the computation.
CLOCK_KEYS = {"wall_time_s", "process_wall_s", "peak_rss_mb", "history"}


def tiny_grid(seeds=(0, 1, 2)):
    return [sweep.Run(f"xor_b/seed{s}", "inspo_matrix", {**TINY, "seed": s}) for s in seeds]


def computed(summary: dict) -> dict:
    """The summary without its timings and without paths that name the run's directory."""
    return {k: v for k, v in summary.items() if k not in CLOCK_KEYS and k != "args"}


def sweep_cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "sweep.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        **kwargs,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The tiny grid run once on the local pool."""
    results = tmp_path_factory.mktemp("reference")
    summaries = sweep.run_grid(tiny_grid(), str(results), workers=2, work_dir=str(results / "work"), progress=False)
    return results, summaries


def test_a_tiny_grid_runs_locally_and_is_skipped_when_done(reference):
    results, summaries = reference
    assert sorted(summaries) == ["xor_b/seed0", "xor_b/seed1", "xor_b/seed2"]
    for name, summary in summaries.items():
        assert summary["args"]["seed"] == int(name[-1]) and summary["args"]["num_updates"] == 10
        assert summary["process_wall_s"] >= summary["wall_time_s"] > 0 and summary["peak_rss_mb"] > 50
        assert json.load(open(results / name / "summary.json")) == summary
    mtimes = {name: os.path.getmtime(results / name / "summary.json") for name in summaries}
    start = time.time()
    again = sweep.run_grid(tiny_grid(), str(results), workers=2, work_dir=str(results / "work"), progress=False)
    assert again == summaries and time.time() - start < 5  # nothing ran again
    assert mtimes == {name: os.path.getmtime(results / name / "summary.json") for name in summaries}


def test_a_killed_sweep_does_only_the_missing_runs(reference, tmp_path):
    _, expected = reference
    args = [
        "--script",
        "inspo_matrix",
        "--set",
        *[f"{k}={v}" for k, v in TINY.items()],
        "--seeds",
        "0",
        "1",
        "2",
        "--results-dir",
        str(tmp_path / "results"),
        "--work-dir",
        str(tmp_path / "work"),
        "--workers",
        "1",
    ]
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "benchmarks", "sweep.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    prefix = (
        tmp_path / "results" / "game=xor" / "dataset=b" / "num_updates=10" / "bc_updates=10" / "final_eval_episodes=32"
    )
    deadline = time.time() + 120
    while not (prefix / "seed0" / "summary.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 the driver and its worker
    process.wait()
    done = [s for s in (0, 1, 2) if (prefix / f"seed{s}" / "summary.json").exists()]
    assert 1 <= len(done) < 3
    before = {s: os.path.getmtime(prefix / f"seed{s}" / "summary.json") for s in done}
    result = sweep_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    for s in done:  # the finished runs were not run again
        assert os.path.getmtime(prefix / f"seed{s}" / "summary.json") == before[s]
    for s in (0, 1, 2):  # and the sweep ends with the same numbers as one that was never killed
        summary = json.load(open(prefix / f"seed{s}" / "summary.json"))
        assert computed(summary) == computed(expected[f"xor_b/seed{s}"])


def children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(child) for child in f.read().split()}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(
    not os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children"), reason="needs Linux's /proc"
)
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_the_driver_ends_its_workers(tmp_path, how):
    """SIGTERM, Ctrl-C or even kill -9 of the driver alone: no run is left running orphaned."""
    args = [
        "--script",
        "inspo_matrix",
        "--set",
        "game=xor",
        "dataset=b",
        "num_updates=1000000",
        "bc_updates=10",
        "--seeds",
        "0",
        "1",
        "--results-dir",
        str(tmp_path / "results"),
        "--work-dir",
        str(tmp_path / "work"),
        "--workers",
        "2",
    ]
    driver = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "benchmarks", "sweep.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # as a terminal starts it: a test run in the background inherits SIGINT ignored, which Python keeps
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while len(list((tmp_path / "work").glob("*/*/*/*/seed*/log.txt"))) < 2 and time.time() < deadline:
        time.sleep(0.2)  # both runs have started in their workers
    workers = children(driver.pid)
    assert len(workers) >= 2 and all(alive(pid) for pid in workers)
    driver.send_signal(how)
    driver.wait(timeout=60)
    deadline = time.time() + 20
    while any(alive(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} worker(s) still running after {how!r} of the driver"


def test_a_failing_run_is_reported_and_does_not_stop_the_others(tmp_path, capsys):
    runs = [
        sweep.Run("good", "inspo_matrix", {**TINY, "seed": 0}),
        sweep.Run("bad", "inspo_matrix", {**TINY, "seed": 0, "dataset_dir": str(tmp_path / "no_such_buffer")}),
    ]
    summaries = sweep.run_grid(
        runs, str(tmp_path / "results"), workers=2, work_dir=str(tmp_path / "work"), progress=False
    )
    assert list(summaries) == ["good"]
    assert not (tmp_path / "results" / "bad" / "summary.json").exists()
    err = capsys.readouterr().err
    assert "run bad failed: error:" in err and "no_such_buffer" in err
    assert "1 of 2 runs failed: bad" in err


@pytest.mark.parametrize(
    "runs, fragment",
    [
        ([sweep.Run("a", "inspo_matrix", {"no_such_flag": 1})], "no_such_flag"),
        ([sweep.Run("a", "inspo_nothing", {})], "inspo_nothing"),
        ([sweep.Run("a", "inspo_matrix", {"runs_dir": "x"})], "runs_dir"),
        ([sweep.Run("a", "inspo_matrix", {}), sweep.Run("a", "inspo_matrix", {"seed": 1})], "'a'"),
        ([sweep.Run("../a", "inspo_matrix", {})], "../a"),
    ],
)
def test_a_bad_grid_is_rejected_before_anything_runs(tmp_path, runs, fragment):
    with pytest.raises(InputError, match=fragment.replace(".", r"\.")):
        sweep.run_grid(runs, str(tmp_path / "results"), workers=1, work_dir=str(tmp_path / "work"), progress=False)
    assert not (tmp_path / "work").exists() or not os.listdir(tmp_path / "work")


def test_cli_bad_input(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    base = ["--script", "inspo_matrix", "--set", "game=xor", "--seeds", "0", "--work-dir", str(tmp_path / "work")]

    def error(argv, *fragments):
        assert_cli_error("benchmarks/sweep.py", argv, capsys, monkeypatch, *fragments)

    error([*base, "--results-dir", str(tmp_path / "r"), "--workers", "0"], "--workers 0")
    error([*base, "--results-dir", str(a_file)], "--results-dir", "a_file")
    assert a_file.read_text() == "keep me"
    error([*base, "--results-dir", str(tmp_path / "r"), "--ray-address", "127.0.0.1:1"], "--ray-address", "127.0.0.1:1")
    error(
        ["--script", "inspo_matrix", "--set", "gmae=xor", "--seeds", "0", "--results-dir", str(tmp_path / "r")], "gmae"
    )
    # and once as a user types it, in a fresh interpreter
    assert_one_line_error(
        sweep_cli("--script", "inspo_matrix", "--set", "game", "--results-dir", str(tmp_path / "r")), "--set 'game'"
    )


def test_ray_gives_the_same_summaries_as_the_local_pool(reference, tmp_path):
    ray = pytest.importorskip("ray")
    _, expected = reference
    try:
        summaries = sweep.run_grid(
            tiny_grid(),
            str(tmp_path / "results"),
            workers=2,
            ray_address="local",
            work_dir=str(tmp_path / "work"),
            progress=False,
        )
    finally:
        ray.shutdown()
    assert sorted(summaries) == sorted(expected)
    for name in expected:
        assert computed(summaries[name]) == computed(expected[name])


def test_smac_report_judges_the_papers_ordering_as_printed():
    """benchmarks/smac.py's ordering line: expert >= mixed > medium-replay and medium, judged on the two-decimal
    win rates it prints (0.001 against 0.000, two battles of 1600, is no order), and the largest gain over BC."""
    from benchmarks import smac

    gain = {"medium": 0.0, "medium_replay": 0.0, "expert": 0.11, "mixed": 0.001}
    line = smac.ordering_line("3s_vs_5z", {"medium": 0.0, "medium_replay": 0.0, "expert": 0.25, "mixed": 0.0012}, gain)
    assert line == (
        "- 3s_vs_5z: expert 0.25, mixed 0.00, medium-replay 0.00, medium 0.00: the ordering does not hold "
        "(mixed ≤ medium-replay, mixed ≤ medium); largest gain over BC on expert (+0.11)."
    )
    line = smac.ordering_line(
        "2s3z", {"medium": 0.03, "medium_replay": 0.0, "expert": 1.0, "mixed": 0.999}, dict.fromkeys(gain, 0.0)
    )
    assert line == (
        "- 2s3z: expert 1.00, mixed 1.00, medium-replay 0.00, medium 0.03: the ordering holds; "
        "no gain over BC in win rate on any dataset."
    )
    line = smac.ordering_line("5m_vs_6m", {"medium": 0.12, "medium_replay": 0.12, "expert": 0.85, "mixed": 0.90}, gain)
    assert "the ordering does not hold (expert < mixed)" in line


def test_smac_tuning_runs_change_one_setting_and_are_reported_beside_the_defaults():
    """benchmarks/smac.py's runs beyond the defaults (TUNING) keep the grid's budget but for their one flag, and
    their section sets them beside the grid's runs of the same cells."""
    from benchmarks import smac

    options = smac.Options(seeds=[0], maps=["2s3z"], num_updates=7, bc_updates=5)
    runs = {r.name: r.flags for r in smac.grid(options)}
    flags = runs["5m_vs_6m/mixed/alpha-auto/seed0"]
    assert (flags["alpha"], flags["autotune_alpha"], flags["bc_updates"], flags["num_updates"]) == (0.1, True, 5, 7)
    assert runs["2s3z/expert/inspo/seed0"]["bc_updates"] == 5 and "alpha" not in runs["2s3z/expert/inspo/seed0"]

    def summary(seed, win, bc, minutes, variety=True):
        return {
            "final_win_rate": win,
            "bc_win_rate": bc,
            "wall_time_s": 60 * minutes,
            "args": {"seed": seed},
            "card": {"variety": True} if variety else {},
        }

    groups = {
        ("5m_vs_6m", "expert", "inspo"): [summary(0, 0.2, 0.1, 6), summary(1, 0.4, 0.3, 6)],
        ("5m_vs_6m", "expert", "alpha-auto"): [summary(0, 0.8, 0.6, 10), summary(1, 0.6, 0.6, 30, variety=False)],
    }
    lines = smac.tuning_report(groups, options, {"5m_vs_6m/expert/alpha-auto/seed1": "shared the cores"})
    assert (
        "| 5m_vs_6m | expert | defaults | 0.30 ± 0.10 | 0.20 ± 0.10 | +0.10 | 0.79 ± 0.12 | 0.82 ± 0.04 | 0,1 | "
        "6.0 min |"
    ) in lines
    # a run on the datasets made before the simulator's variety rules marks its row
    assert (
        "| 5m_vs_6m | expert | --autotune-alpha --alpha 0.1 ‡ | 0.70 ± 0.10 | 0.60 ± 0.00 | +0.10 | 0.79 ± 0.12 | "
        "0.82 ± 0.04 | 0,1 | 10.0 min |"
    ) in lines
    assert (
        "| 5m_vs_6m | mixed | --autotune-alpha --alpha 0.1 | – | – | – | 0.78 ± 0.06 | 0.21 ± 0.12 | none yet | – |"
    ) in lines


def test_smac_report_counts_the_seeds_where_inspo_is_below_bc():
    """A cell below BC is described by how many seeds are below as printed: every seed, most (no verdict), or at
    most half (within the seeds' spread); -0.001 prints as -0.00 and does not count."""
    from benchmarks import smac

    assert smac.seed_differences([-0.02, -0.3]) == " (per seed -0.02, -0.30: below on every seed)"
    assert (
        smac.seed_differences([0.07, -0.15, -0.11, -0.27, -0.16])
        == " (per seed +0.07, -0.15, -0.11, -0.27, -0.16: below on 4 of 5 seeds)"
    )
    assert smac.seed_differences([-0.001, -0.09, -0.004, 0.04, 0.03]) == (
        " (per seed -0.00, -0.09, -0.00, +0.04, +0.03: below on 1 of 5 seeds, a difference within the seeds' spread "
        "rather than a systematic loss)"
    )


def test_smac_cells_run_only_those_cells_with_the_scripts_own_budget():
    """--cells map/dataset picks cells instead of --maps x --datasets; without --num-updates / --bc-updates the
    runs carry no budget flag, so inspo_smac.py's PRESETS decide; a bad cell is one line."""
    from benchmarks import smac

    options = smac.Options(seeds=[0, 1], cells=["3s_vs_5z/mixed", "5m_vs_6m/expert"], ablations=False)
    runs = {r.name: r.flags for r in smac.grid(options)}
    assert sorted(runs) == sorted(f"{c}/inspo/seed{s}" for c in ("3s_vs_5z/mixed", "5m_vs_6m/expert") for s in (0, 1))
    assert all("num_updates" not in flags and "bc_updates" not in flags for flags in runs.values())
    assert smac.budget_flags(options) == "--eval-interval 100"
    for cell in ("3s_vs_5z", "3s_vs_5z/nope", "nope/mixed"):
        with pytest.raises(InputError, match=f"--cells '{cell}' is not accepted; accepted: map/dataset"):
            smac.main(smac.Options(cells=[cell], report_only=True))


def test_smac_report_marks_one_step_cells_and_tables_the_critics():
    """Table 4 marks the cells made before λ-returns (†); the Critics section tables only the others."""
    from benchmarks import smac

    def summary(seed, corr, bias, td_lambda=True):
        s = {
            "final_win_rate": 0.5,
            "bc_win_rate": 0.25,
            "final_return": 15.0,
            "bc_return": 14.0,
            "args": {"seed": seed, "tau": 0.05},
        }
        if td_lambda:
            s["args"]["td_lambda"] = 0.8
            s["critic"] = {"corr": corr, "relative_bias": bias, "buckets": {"t0-1": {"q": 13.0, "return": 12.0}}}
        return s

    groups = {
        ("2s3z", "mixed", "inspo"): [summary(0, 0.9, 0.1), summary(1, 0.8, -0.2)],
        ("2s3z", "expert", "inspo"): [summary(0, 0, 0, td_lambda=False)],
    }
    lines = smac.critic_report(groups)
    rows = [line for line in lines if line.startswith("| 2s3z")]
    assert rows == ["| 2s3z | mixed | 0.8 | 0.05 | 0.85 (0.80) | -5 % (-20 %) | 13.00 / 12.00 | +0.25, +1.00 | 0,1 |"]
    assert smac.lambda_critic(groups[("2s3z", "mixed", "inspo")][0]) and not smac.lambda_critic(
        groups[("2s3z", "expert", "inspo")][0]
    )
