"""Runner choice and everything specific to one runner: pipeline options, the local
runner's worker processes, and the few settings of Beam's own workers that rely on Beam
internals (each with its measured gain and a test that fails when Beam changes)."""
