"""The command line: the Invoke collection (`tasks`), the standalone `hubtasks` program, `init`
and the GitHub Actions step outputs. Flags become `Settings`; a `HubError` becomes one line."""
