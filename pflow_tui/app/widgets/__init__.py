"""The app's panes, one per module."""
