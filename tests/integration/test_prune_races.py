"""`inv prune` never deletes what it must keep, when the registry answers a read late or wrong
(issue 27, items 1 and 2): a real Distribution registry (deletes enabled) behind the
per-request fault proxy (`devtools.httpfault`). After every run, every tag left must still
pull whole (`assert_tags_pull`).

The repository of each test: pr-1, pr-2, pr-3 released in that order (3, 2 and 1 days ago),
`latest` promoted onto pr-1's image, and `main` an image of its own.
"""

from __future__ import annotations

import datetime
import itertools
import json
import subprocess
import sys
import time

import pytest

from devtools.httpfault import HttpFaultProxy, Rule
from devtools.stack import Registry, missing_packages
from tests.helpers.pulls import assert_tags_pull
from tests.helpers.uploads import Uploader

USER, PASSWORD = "racer", "race-password-2468"
NOW = datetime.datetime.now(datetime.timezone.utc)
_names = itertools.count(1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    missing = missing_packages()
    if missing:
        pytest.fail(f"integration tests need: apt-get install {' '.join(missing)}")
    started = Registry(tmp_path_factory.mktemp("prune-races"), USER, PASSWORD)
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def proxy(registry):
    with HttpFaultProxy(registry.port) as running:
        yield running


@pytest.fixture
def released(registry, proxy, tmp_path):
    """The repository (see the module docstring), and a project that reaches it through the
    proxy, with short retry waits."""
    name = f"{USER}/races{next(_names)}"
    upload = Uploader(registry)
    digests = {
        f"pr-{i}": upload.image(name, [f"pr-{i}"], NOW - datetime.timedelta(days=4 - i))
        for i in (1, 2, 3)
    }
    digests["main"] = upload.image(name, ["main"], NOW - datetime.timedelta(days=9))
    upload.tag(name, "latest", digests["pr-1"])
    digests["latest"] = digests["pr-1"]
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "tasks.py").write_text("from hubtasks import ns\n")
    (folder / ".env").write_text(
        f"HUB_REGISTRY={proxy.address}\nHUB_USERNAME={USER}\nHUB_TOKEN={PASSWORD}\n"
        f"HUB_REPOSITORY={name}\nHUB_RETRIES=4\nHUB_RETRY_DELAY=0.1\n"
    )
    (folder / ".env").chmod(0o600)
    return name, digests, folder, upload


def _prune(folder, *args: str) -> subprocess.Popen:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder)}
    return subprocess.Popen(
        [sys.executable, "-m", "invoke", "prune", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(folder, *args: str) -> tuple[int, str, str]:
    running = _prune(folder, *args)
    out, err = running.communicate(timeout=120)
    return running.returncode, out, err


# --- item 1: a listed tag whose manifest read answers 404 -----------------------------------


def test_a_404_once_on_a_kept_tags_manifest_is_read_again(registry, proxy, released):
    name, digests, folder, _ = released
    proxy.add(Rule(path="/manifests/latest$", status=404, times=1))
    code, out, err = _run(folder, "--match", "pr-*", "--keep", "1", "--yes")
    assert code == 0, err
    assert registry.tags(name) == ["latest", "main", "pr-1", "pr-3"]
    assert registry.manifest_digest(name, "latest") == digests["pr-1"]
    assert "keep pr-1: its digest is also latest's, which is kept" in err
    assert out.split() == [f"{proxy.address}/{name}:pr-2@{digests['pr-2']}"]
    assert proxy.count(path="/manifests/latest$") >= 2
    assert_tags_pull(registry, name)


def test_a_kept_tag_that_cannot_be_read_stops_every_delete(registry, proxy, released):
    name, _, folder, _ = released
    proxy.add(Rule(path="/manifests/latest$", status=404, times=None))
    code, out, err = _run(folder, "--match", "pr-*", "--keep", "1", "--yes")
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("hubtasks: ") and ":latest" in last, last
    assert "deletes nothing" in last, last
    assert "Traceback" not in err and PASSWORD not in out + err
    assert out == ""
    assert proxy.count(method="DELETE") == 0
    assert registry.tags(name) == ["latest", "main", "pr-1", "pr-2", "pr-3"]
    assert_tags_pull(registry, name)


def test_a_kept_tag_unreadable_right_before_a_delete_stops_it(registry, proxy, released):
    """Read fine for the plan, then 404 on every read again before the first DELETE: that
    DELETE is not sent (each read was retried; the DELETE is not tried again around them)."""
    name, _, folder, _ = released
    proxy.add(Rule(path="/manifests/latest$", skip=1, status=404, times=None))
    code, out, err = _run(folder, "--match", "pr-*", "--keep", "1", "--yes")
    assert code == 1, err
    last = err.strip().splitlines()[-1]
    assert ":latest" in last and "(deleted before this: none)" in last, last
    assert out == "" and proxy.count(method="DELETE") == 0
    assert proxy.count(path="/manifests/latest$") == 1 + 4  # the plan's read, then HUB_RETRIES
    assert registry.tags(name) == ["latest", "main", "pr-1", "pr-2", "pr-3"]
    assert_tags_pull(registry, name)


def test_a_tag_deleted_after_the_listing_is_left_out(registry, proxy, released):
    """A tag really gone by the time its manifest is read (the listing is re-read and no
    longer names it) protects nothing and stops nothing."""
    name, _, folder, _ = released
    listed = ["gone", "latest", "main", "pr-1", "pr-2", "pr-3"]
    # The first listing names `gone`, which the registry does not hold (any more); every
    # later listing comes from the registry.
    proxy.add(
        Rule(
            path="/tags/list",
            status=200,
            times=1,
            headers={"Content-Type": "application/json"},
            body=json.dumps({"name": name, "tags": listed}).encode(),
        )
    )
    code, _, err = _run(folder, "--match", "pr-*", "--keep", "1", "--yes")
    assert code == 0, err
    assert "pr-2" not in registry.tags(name) and "pr-1" in registry.tags(name)
    assert_tags_pull(registry, name)


# --- item 2: a tag moved onto a candidate while prune runs ----------------------------------


def test_a_tag_moved_onto_a_candidate_during_the_run_spares_it(registry, proxy, released):
    name, digests, folder, upload = released
    upload.tag(name, "latest", digests["main"])  # latest starts elsewhere: pr-1 is a candidate
    slow = proxy.add(Rule(method="DELETE", delay=2, times=1))
    running = _prune(folder, "--match", "pr-*", "--keep", "1", "--yes")
    deadline = time.monotonic() + 60
    while slow.matched == 0 and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.02)
    assert slow.matched == 1, running.communicate()[1]
    upload.tag(name, "latest", digests["pr-1"])  # a rollback, while the first DELETE is slow
    out, err = running.communicate(timeout=120)
    assert running.returncode == 0, err
    assert registry.manifest_digest(name, "latest") == digests["pr-1"]
    assert "pr-1" in registry.tags(name) and "pr-2" not in registry.tags(name)
    assert "keep pr-1: latest now holds its digest" in err, err
    assert out.split() == [f"{proxy.address}/{name}:pr-2@{digests['pr-2']}"]
    assert_tags_pull(registry, name)
