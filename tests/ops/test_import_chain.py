"""The package's import graph stays low: no chain of our own modules is longer than ten.

Run it alone to print the longest chains: `python tests/ops/test_import_chain.py`.
"""

import sys
from functools import cache
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import grimp
import pytest

PROJECT = Path(__file__).resolve().parents[2]
PACKAGE = "smh_dashboard"
LONGEST_ALLOWED = 10


def import_graph() -> dict[str, set[str]]:
    """Return each module of the package with the modules of the package it imports directly."""
    if str(PROJECT) not in sys.path:
        sys.path.insert(0, str(PROJECT))
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    return {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}


def longest_chains(imports: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """Return every longest import path, as tuples of modules, importer first."""
    # A cycle would make "longest" endless; raises graphlib.CycleError naming it.
    tuple(TopologicalSorter(imports).static_order())

    @cache
    def from_module(module: str) -> list[tuple[str, ...]]:
        below = [chain for imported in sorted(imports[module]) for chain in from_module(imported)]
        if not below:
            return [(module,)]
        deepest = max(len(chain) for chain in below)
        return [(module, *chain) for chain in below if len(chain) == deepest]

    chains = [chain for module in sorted(imports) for chain in from_module(module)]
    deepest = max(len(chain) for chain in chains)
    return [chain for chain in chains if len(chain) == deepest]


def short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".")


def test_longest_chains_finds_the_deepest_path_and_refuses_a_cycle():
    imports = {"a": {"b", "c"}, "b": {"d"}, "c": {"b"}, "d": set(), "e": {"d"}}
    assert longest_chains(imports) == [("a", "c", "b", "d")]

    imports["d"] = {"a"}
    with pytest.raises(CycleError):
        longest_chains(imports)


def test_no_import_chain_between_our_modules_is_longer_than_ten():
    chains = longest_chains(import_graph())

    assert len(chains[0]) <= LONGEST_ALLOWED, " → ".join(map(short, chains[0]))


if __name__ == "__main__":
    found = longest_chains(import_graph())
    print(f"longest import chain: {len(found[0])} modules ({len(found)} such chains)")
    for chain in found:
        print("  " + " → ".join(map(short, chain)))
