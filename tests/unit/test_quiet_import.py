"""`import hubtasks` has no side effects; the Python API keeps other libraries' debug records
out of a caller's DEBUG logs; the example tasks.py leaves the shared collection alone.

Each check runs in a fresh interpreter, where "nothing happened yet" is true.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def python(code: str, cwd: Path, **env: str) -> dict:
    """Run `code` in a fresh interpreter in `cwd`; it prints one JSON document."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DOCKER_"))}
    environ.update(env)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_import_reads_no_env_file_and_installs_no_log_factory(tmp_path):
    (tmp_path / ".env").write_text("HUB_TOKEN=import-time-secret\n")
    found = python(
        """
        import json, logging, sys
        opened = []
        sys.addaudithook(lambda event, args: opened.append(str(args[0]))
                         if event == "open" and str(args[0]).endswith(".env") else None)
        factory = logging.getLogRecordFactory()
        import hubtasks
        hubtasks.Settings, hubtasks.HubError, hubtasks.release  # the Python API, loaded
        print(json.dumps({
            "opened": opened,
            "factory_changed": logging.getLogRecordFactory() is not factory,
            "tasks_loaded": "hubtasks.cli.tasks" in sys.modules,
        }))
        """,
        tmp_path,
    )
    assert found == {"opened": [], "factory_changed": False, "tasks_loaded": False}


def test_loading_the_collection_installs_the_log_redaction(tmp_path):
    found = python(
        """
        import json, logging
        factory = logging.getLogRecordFactory()
        from hubtasks import ns
        print(json.dumps({"factory_changed": logging.getLogRecordFactory() is not factory}))
        """,
        tmp_path,
    )
    assert found == {"factory_changed": True}


def test_python_api_under_a_debug_root_logger_adds_no_library_records(tmp_path):
    """What nox does: the root logger at DEBUG. A build against a dead daemon and a shell
    hook touch Docker's SDK and Invoke; neither may fill the caller's log."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    found = python(
        """
        import json, logging
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.name)
        logging.getLogger().setLevel(logging.DEBUG)
        logging.getLogger().addHandler(Keep())
        logging.getLogger("mine").debug("the caller's own record")
        import hubtasks
        settings = hubtasks.load_settings({"tags": ["v1"], "repository": "u/app"})
        try:
            hubtasks.build(settings)
        except hubtasks.HubError:
            pass
        session = hubtasks.Session(hook_commands={"pre_build": "true"})
        session.hooks.run("pre", hubtasks.Facts(stage="build", image="u/app"))
        print(json.dumps(sorted(set(records))))
        """,
        tmp_path,
        DOCKER_HOST=f"unix://{tmp_path}/no-daemon.sock",
    )
    assert found == ["mine"]


def test_example_tasks_py_leaves_the_shared_collection_alone(tmp_path):
    found = python(
        f"""
        import json, runpy
        import hubtasks
        before = sorted(hubtasks.ns.tasks)
        example = runpy.run_path({str(REPO_ROOT / "examples" / "tasks.py")!r})
        print(json.dumps({{
            "before": before,
            "after": sorted(hubtasks.ns.tasks),
            "example": sorted(example["ns"].tasks),
        }}))
        """,
        tmp_path,
    )
    assert found["after"] == found["before"]
    assert "test" not in found["after"]
    assert set(found["example"]) == {*found["before"], "test"}


def test_the_collection_freezes_the_heap_only_at_exit(tmp_path):
    """The command line skips the last garbage collection's walk over every imported module;
    a process that loads the collection keeps collecting as usual until it exits."""
    found = python(
        """
        import atexit, gc, json
        seen = {}
        # Registered before the collection loads, so it runs after the collection's handler.
        atexit.register(lambda: print(json.dumps({**seen, "at_exit": gc.get_freeze_count()})))
        import hubtasks.cli.tasks
        seen["after_import"] = gc.get_freeze_count()
        """,
        tmp_path,
    )
    assert found["after_import"] == 0
    assert found["at_exit"] > 10_000
