"""Environments, dataset makers and loaders shared by the InSPO scripts.

One module per environment family (`matrix`, `bridge`), plus `alberdice` for the
released AlberDICE buffer format that both read. The algorithm itself lives only in
the top-level `inspo_*.py` scripts.
"""


class InputError(ValueError):
    """Bad user input (a flag, a dataset file, a cache). Scripts print it as one line and exit 2."""
