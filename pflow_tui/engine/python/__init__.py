"""Tracing plain Python PocketFlow programs: the tracer (:mod:`.pytrace`), the graph read
from the program's objects (:mod:`.pygraph`), and loading and running a program file
(:mod:`.pyprogram`)."""
