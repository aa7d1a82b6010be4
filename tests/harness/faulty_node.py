"""``python -m tests.harness.faulty_node FAULT node run --config …``: the normal ``mira``
CLI in a process with one fault of :data:`tests.harness.faults.FAULTS` installed:
``bad-shares`` (its FROST signer sends an invalid share in every round it signs) or
``lying-leader`` (it proposes its own value in the rounds it leads). The fault lives
here, not behind a production knob: the node code is the one every member runs."""

from __future__ import annotations

import sys

from tests.harness.faults import FAULTS

if __name__ == "__main__":
    fault = sys.argv.pop(1)
    FAULTS[fault]()

    from oracle.cli.main import main

    main()
