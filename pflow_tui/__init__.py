"""pflow-tui: a terminal debugger for pflow workflows running on PocketFlow."""

__version__ = "0.1.0"
