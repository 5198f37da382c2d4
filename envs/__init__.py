"""Environments, dataset makers and loaders shared by the InSPO scripts.

One module per environment family (`matrix`, `bridge`), plus `alberdice` for the
released AlberDICE buffer format that both read. The algorithm itself lives only in
the top-level `inspo_*.py` scripts.
"""


class InputError(ValueError):
    """Bad user input (a flag, a dataset file, a cache). Scripts print it as one line and exit 2."""


# ---------------------------------------------------------------------------------------
# Checks at the boundary, shared by the scripts' check_args and the envs' public methods:
# each raises InputError with the flag, the bad value and what is accepted.
# ---------------------------------------------------------------------------------------
SEED_LIMIT = 2**32  # numpy, torch and the simulators all take seeds in [0, 2**32)


def is_int(value) -> bool:
    """A Python or numpy integer, and not a bool (which Python counts as an int)."""
    import numpy as np

    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_number(
    name: str, value, low: float, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> None:
    """A finite real number in [low, high] (open at an end when asked)."""
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )
    if ok:
        ok = (value > low if low_open else value >= low) and (
            high is None or (value < high if high_open else value <= high)
        )
    if not ok:
        interval = (
            ("(" if low_open else "[")
            + f"{low}, "
            + ("∞)" if high is None else f"{high}" + (")" if high_open else "]"))
        )
        raise InputError(f"{flag(name)} {value} is not accepted; accepted: a finite number in {interval}")


def check_count(name: str, value, low: int = 1, high: int = 10**9) -> None:
    """An integer in [low, high]; the upper limit turns an impossible allocation into one line."""
    if not is_int(value) or not low <= value <= high:
        raise InputError(f"{flag(name)} {value} is not accepted; accepted: an integer in [{low}, {high}]")


def check_seed(name: str, value) -> None:
    if not is_int(value) or not 0 <= value < SEED_LIMIT:
        raise InputError(f"{flag(name)} {value!r} is not accepted; accepted: an integer in [0, 2**32)")


def check_writable_dir(name: str, path: str) -> None:
    """Create the directory if needed and prove it can be written, before any long work starts."""
    import os
    import tempfile

    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write_test_"):
            pass
    except OSError as error:
        raise InputError(
            f"{flag(name)} {path!r} cannot be written ({error.strerror or error}); "
            "accepted: a directory this user can write"
        ) from None


def import_wandb():
    """wandb for --track, or one line saying how to get it."""
    try:
        import wandb
    except ImportError:
        raise InputError(
            "--track needs wandb, which is not installed; accepted: pip install wandb, or no --track"
        ) from None
    return wandb


def new_run_dir(runs_dir: str, run_name: str) -> tuple[str, str]:
    """A directory of its own for a new run: `run_name`, or `run_name-2`, `-3`, ... when one exists
    (two runs started in the same second never share, nor overwrite, a directory). Returns (name, path)."""
    import os

    for k in range(1, 1000):
        name = run_name if k == 1 else f"{run_name}-{k}"
        try:
            os.makedirs(os.path.join(runs_dir, name), exist_ok=False)
            return name, os.path.join(runs_dir, name)
        except FileExistsError:
            continue
        except OSError as error:
            raise InputError(f"--runs-dir {runs_dir!r} cannot be written ({error.strerror or error})") from None
    raise InputError(f"--runs-dir {runs_dir!r} already holds 999 runs named {run_name!r}")


def run_cli(main, args_class) -> None:
    """A tool's `__main__`: flags read by tyro into args_class, then main(args); bad input (InputError)
    ends as one `error:` line on stderr and exit code 2, never a traceback."""
    import sys

    import tyro

    args = tyro.cli(args_class)
    try:
        main(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
