"""The package's version, declared once: pyproject.toml reads it from here (setuptools'
`attr:`), and the User-Agent and `hubtasks --version` use it without `importlib.metadata`,
whose import alone costs ~45 ms on every command."""

VERSION = "0.1.0"
