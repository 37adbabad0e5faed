"""The event stream and what is made of it: the event kinds (:mod:`.events`), trace files
(:mod:`.writer`, read only through :mod:`.reader`), replay, diff, re-run and fork, exports,
and what keeps traces safe (checks, signatures, redaction, large values)."""
