"""Coverage-guided fuzzing of every decoder with atheris (not collected by
pytest; ``test_hostile_input.py`` runs it when atheris is installed).

Each input's first byte picks the decoder (artifact, log, checkpoint, trace),
the rest is what it decodes; anything but a `DurabilityError` escaping is a
crash atheris reports with the input. The seed corpus (valid inputs of each
kind) is written to a temporary directory first::

    .venv/bin/python tests/reliability/fuzz_atheris.py -runs=1000000 -seed=1
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["durability"]):
    from durability import DurabilityError
    from tests.reliability._fuzz import DECODERS, seeds

KINDS = sorted(DECODERS)


def one_input(data: bytes) -> None:
    if not data:
        return
    with contextlib.suppress(DurabilityError):
        DECODERS[KINDS[data[0] % len(KINDS)]](data[1:])


def main() -> None:
    corpus = Path(tempfile.mkdtemp(prefix="durability-fuzz-"))
    for kind, inputs in seeds().items():
        for i, data in enumerate(inputs):
            (corpus / f"{kind}-{i}").write_bytes(bytes([KINDS.index(kind)]) + data)
    args = [arg for arg in sys.argv if not arg.startswith("--")]
    atheris.Setup([*args, str(corpus)], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
