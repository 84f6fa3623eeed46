"""gitinfo: a remote URL fit for a public label, and what a real (throwaway) git repo says."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hubtasks.build.gitinfo import is_tracked, public_url, read_git, why_no_git


@pytest.mark.parametrize(
    ("remote", "public"),
    [
        # scp-like syntax becomes https, with or without a user
        ("git@github.com:owner/repo.git", "https://github.com/owner/repo"),
        ("github.com:owner/repo", "https://github.com/owner/repo"),
        ("git@gitlab.example.org:group/sub/repo.git", "https://gitlab.example.org/group/sub/repo"),
        ("user:hunter2@host:owner/repo.git", "https://host/owner/repo"),
        # credentials in a URL are dropped, the rest kept
        ("https://user:hunter2@github.com/owner/repo.git", "https://github.com/owner/repo"),
        ("https://ghp_0123456789abcdef@github.com/owner/repo", "https://github.com/owner/repo"),
        ("https://oauth2:tok%40en@host:8443/owner/repo.git", "https://host:8443/owner/repo"),
        ("ssh://git@host:2222/owner/repo.git", "ssh://host:2222/owner/repo"),
        # nothing to change
        ("https://github.com/owner/repo", "https://github.com/owner/repo"),
        ("file:///srv/git/repo.git", "file:///srv/git/repo"),
        ("/srv/git/repo.git", "/srv/git/repo"),
    ],
)
def test_public_url(remote, public):
    assert public_url(remote) == public


@pytest.mark.parametrize(
    "remote", ["https://user:hunter2@github.com/o/r.git", "user:hunter2@host:o/r.git"]
)
def test_public_url_never_keeps_a_password(remote):
    assert "hunter2" not in public_url(remote)
    assert "@" not in public_url(remote)


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A git work tree with one commit, isolated from the machine's git configuration."""
    for name in ("GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM"):
        monkeypatch.setenv(name, "/dev/null")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.invalid")
        monkeypatch.setenv(f"GIT_{who}_DATE", "2024-05-01T12:00:00Z")
    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "Dockerfile").write_text("FROM scratch\n")
    git(root, "add", "Dockerfile")
    git(root, "commit", "-q", "-m", "first")
    return root


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_read_git_reports_revision_time_and_a_clean_tree(repo):
    state = read_git(repo)
    assert state is not None
    assert state.revision == git(repo, "rev-parse", "HEAD")
    assert state.short == state.revision[:7]
    assert state.commit_time == 1714564800  # 2024-05-01T12:00:00Z
    assert (state.exact_tag, state.dirty, state.remote_url) == (None, False, None)


def test_read_git_sees_tags_dirt_and_a_remote_without_its_credentials(repo):
    git(repo, "tag", "v1.2.0")
    git(repo, "remote", "add", "origin", "https://user:hunter2@example.com/owner/app.git")
    (repo / "new-file").write_text("x")
    state = read_git(repo)
    assert state is not None
    assert state.exact_tag == "v1.2.0"
    assert state.dirty is True
    assert state.remote_url == "https://example.com/owner/app"


def test_read_git_falls_back_to_the_first_remote_when_there_is_no_origin(repo):
    git(repo, "remote", "add", "upstream", "git@example.com:owner/app.git")
    state = read_git(repo)
    assert state is not None
    assert state.remote_url == "https://example.com/owner/app"


def test_outside_a_work_tree_there_is_no_state(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))  # do not find a parent repo
    assert read_git(tmp_path) is None
    assert is_tracked(tmp_path / "Dockerfile") is False


def test_is_tracked(repo):
    (repo / "untracked").write_text("x")
    assert is_tracked(repo / "Dockerfile") is True
    assert is_tracked(repo / "untracked") is False


def test_a_repository_without_commits_is_told_apart_from_no_repository(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert why_no_git(tmp_path) == "is not in a git work tree"
    git(tmp_path, "init", "-q")
    assert read_git(tmp_path) is None
    assert why_no_git(tmp_path) == "is in a git repository with no commits yet"
