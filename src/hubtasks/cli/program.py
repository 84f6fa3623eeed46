"""`hubtasks`: the same tasks as a standalone command, no tasks.py needed.

hubtasks init                  (.env to fill in, .dockerignore, .gitignore, tasks.py)
hubtasks release --tag v1      (reads ./.env like `inv release` does)
hubtasks --version
"""

from __future__ import annotations

from invoke import Program

import hubtasks
from hubtasks.cli.tasks import ns

program = Program(namespace=ns, version=hubtasks.__version__, name="hubtasks", binary="hubtasks")


def main() -> None:
    program.run()


if __name__ == "__main__":
    main()
