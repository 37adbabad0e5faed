"""The engine: IR, templates, node types, compiler, executor, events and traces.

It never imports Textual (or Rich): everything here runs headless.
"""
