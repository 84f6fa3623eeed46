"""Other libraries' loggers when hubtasks runs as a Python API (nox, scripts).

nox and many scripts set the root logger to DEBUG; hubtasks would then fill their output with
Invoke's and the Docker SDK's (and urllib3's) debug records about hubtasks' own work. Under
Invoke nothing changes: `inv -d` still shows everything.
"""

from __future__ import annotations

import logging

# The libraries hubtasks drives; their debug records describe hubtasks' work, not the caller's.
LIBRARIES = ("invoke", "docker", "urllib3")


def quiet_libraries() -> None:
    """Show only warnings from the libraries hubtasks drives, unless the caller chose a level
    for one of them (a level set on the logger itself is left alone)."""
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
