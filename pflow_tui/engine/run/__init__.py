"""Running a validated flow: compiled onto PocketFlow objects (:mod:`.flow`, one module per
PocketFlow shape), executed under anyio (:mod:`.executor`), every step ending in
:mod:`.land`. Pause and breakpoints (:mod:`.gate`), limits, the process pool and nested
flows live here too."""
