"""The bundled sample corpus, built once per test session and shared by the tests that
only read a build (training, report)."""
from __future__ import annotations

import tempfile
from functools import lru_cache
from pathlib import Path

from tests.helpers import run_build


@lru_cache(maxsize=None)
def sample_corpus() -> Path:
    """Output folder of ``corpus build --sample`` (every dataset), built on first use."""
    output = Path(tempfile.mkdtemp(prefix="sample-corpus-")) / "out"
    run_build(output, sample=True)
    return output
