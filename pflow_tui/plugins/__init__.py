"""Plugins that ship with pflow-tui, registered through its own entry points (pyproject.toml)
exactly as a third-party package would register them."""
