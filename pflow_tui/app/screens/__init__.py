"""Screens other than the main one."""
