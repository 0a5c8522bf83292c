"""Runner choice and what is specific to one runner: the run's pipeline options and the
local runner by default (:mod:`~pipelines.runtime.options`), Beam's filesystems outside a
pipeline (:mod:`~pipelines.runtime.filesystems`, which holds the package's one use of a
Beam internal, tested), and the local build's progress line
(:mod:`~pipelines.runtime.progress_report`)."""
