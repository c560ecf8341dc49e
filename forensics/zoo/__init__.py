"""The attack zoo: stealing attacks and innocent recipes (:mod:`.attacks`, :mod:`.weight_edits`), concrete suspects
built from a victim (:mod:`.entries`, the standard zoo in :mod:`.standard`), the benchmark that runs every protocol
and peer baseline on them (:mod:`.bench`, tables and figures in :mod:`.summary`) and the stress test of an owner's
own victim (:mod:`.stress`).  Importing the package registers the attacks and the standard zoo.
"""
from ..audit.verdict import Kind
from . import standard
from .attacks import Attack, get_attack, list_attacks, register_attack, run_attack
from .bench import BenchResult, run_bench
from .entries import (
    ZooContext,
    ZooEntry,
    ZooResult,
    get_zoo_entry,
    list_zoo_entries,
    register_zoo_entry,
    select_zoo_entries,
    verify_entry,
)
from .stress import stress_test
from .summary import summarize, write_bench

__all__ = ["Attack", "BenchResult", "Kind", "ZooContext", "ZooEntry", "ZooResult", "get_attack", "get_zoo_entry",
           "list_attacks", "list_zoo_entries", "register_attack", "register_zoo_entry", "run_attack", "run_bench",
           "select_zoo_entries", "standard", "stress_test", "summarize", "verify_entry", "write_bench"]
