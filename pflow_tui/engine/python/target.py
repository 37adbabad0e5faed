"""Whether a command-line argument names a Python program: a module of its own, so that
the command line tells a program from a flow without loading the program machinery."""

from __future__ import annotations


def is_target(text: str) -> bool:
    """Does this command-line argument name a Python program (rather than a JSON flow)?"""
    if text.endswith(".json"):
        return False
    head, sep, attr = text.rpartition(":")
    return (bool(sep and head and attr) and not head.endswith(".json")) or text.endswith(".py")
