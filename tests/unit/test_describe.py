"""What the Docker Hub page receives: link rewriting, size limits, the page to send. Pure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hubtasks.dockerhub.describe import (
    Page,
    SourceForm,
    absolutize,
    fit_overview,
    mask_code,
    prepare_page,
    relative_links,
    relative_target,
    source_form,
)
from hubtasks.errors import ConfigError
from hubtasks.settings.resolve import resolve_settings
from tests.helpers.consoles import make_console

REV = "0123456789abcdef0123456789abcdef01234567"
GITHUB = SourceForm(
    f"https://github.com/alice/web/blob/{REV}/", f"https://github.com/alice/web/raw/{REV}/"
)
BLOB, RAW = GITHUB.blob, GITHUB.raw


# --- source_form ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "remote, blob, raw",
    [
        ("https://github.com/alice/web", f"{BLOB}", f"{RAW}"),
        ("https://github.com/alice/web.git", f"{BLOB}", f"{RAW}"),
        ("git@github.com:alice/web.git", f"{BLOB}", f"{RAW}"),
        ("ssh://git@github.com/alice/web.git", f"{BLOB}", f"{RAW}"),
        ("https://user:pw@github.com/alice/web", f"{BLOB}", f"{RAW}"),
        (
            "https://gitlab.com/group/sub/proj.git",
            f"https://gitlab.com/group/sub/proj/-/blob/{REV}/",
            f"https://gitlab.com/group/sub/proj/-/raw/{REV}/",
        ),
        (
            "git@gitlab.example.org:team/app.git",
            f"https://gitlab.example.org/team/app/-/blob/{REV}/",
            f"https://gitlab.example.org/team/app/-/raw/{REV}/",
        ),
        (
            "https://github.example.com:8443/org/app",
            f"https://github.example.com:8443/org/app/blob/{REV}/",
            f"https://github.example.com:8443/org/app/raw/{REV}/",
        ),
    ],
)
def test_source_form_github_and_gitlab(remote, blob, raw):
    assert source_form(remote, REV) == SourceForm(blob, raw)


@pytest.mark.parametrize(
    "remote", ["https://bitbucket.org/a/b", "https://git.example.com/a/b", "/srv/git/app.git", ""]
)
def test_source_form_unknown_hosts(remote):
    assert source_form(remote, REV) is None


# --- absolutize ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "markdown, expected",
    [
        ("![logo](img/logo.png)", f"![logo]({RAW}img/logo.png)"),
        ('![logo](img/logo.png "The logo")', f'![logo]({RAW}img/logo.png "The logo")'),
        ("[guide](docs/guide.md#setup)", f"[guide]({BLOB}docs/guide.md#setup)"),
        ("[raw](file.md?plain=1)", f"[raw]({BLOB}file.md?plain=1)"),
        ("[root](/ROOT.md)", f"[root]({BLOB}ROOT.md)"),
        ("[dir](docs/)", f"[dir]({BLOB}docs/)"),
        ("[spaced](<my file.md>)", f"[spaced](<{BLOB}my file.md>)"),
        (
            "[![badge](badge.svg)](LICENSE)",
            f"[![badge]({RAW}badge.svg)]({BLOB}LICENSE)",
        ),
        ("[`inv release`](docs/release.md)", f"[`inv release`]({BLOB}docs/release.md)"),
        (
            '<img src="img/a.png" width="40"> <a href=\'CONTRIBUTING.md\'>how</a>',
            f'<img src="{RAW}img/a.png" width="40"> <a href=\'{BLOB}CONTRIBUTING.md\'>how</a>',
        ),
        (
            "![Pic][pic] [docs][d]\n\n[pic]: img/pic.png\n[d]: <docs/index.md>\n",
            f"![Pic][pic] [docs][d]\n\n[pic]: {RAW}img/pic.png\n[d]: <{BLOB}docs/index.md>\n",
        ),
        ("![collapsed][]\n\n[collapsed]: c.png\n", f"![collapsed][]\n\n[collapsed]: {RAW}c.png\n"),
    ],
)
def test_relative_links_become_absolute(markdown, expected):
    assert absolutize(markdown, GITHUB) == expected


@pytest.mark.parametrize(
    "markdown",
    [
        "[site](https://example.com/a.md) ![x](http://example.com/x.png)",
        "[mail](mailto:a@example.com) [proto](//cdn.example.com/x.png)",
        "[top](#installation) [empty]()",
        "`[code](span.md)` and ``[two](ticks.md) ` `` here",
        "```\n[fenced](f.md)\n![img](i.png)\n```\n",
        "~~~~md\n[tilde](t.md)\n~~~\n[still](fenced.md)\n~~~~\n",
        "[outside](../other-repo/README.md)",
        r"\[not a link\](x.md)",
        "[text] (spaced.md)",
    ],
)
def test_what_is_left_alone(markdown):
    assert absolutize(markdown, GITHUB) == markdown


def test_text_after_a_fence_is_rewritten_again():
    markdown = "```\n[a](a.md)\n```\n[b](b.md)\n"
    assert absolutize(markdown, GITHUB) == f"```\n[a](a.md)\n```\n[b]({BLOB}b.md)\n"


def test_a_readme_in_a_subfolder_resolves_from_there():
    markdown = "[up](../LICENSE) ![here](shot.png) [root](/x.md) [gone](../../x.md)"
    assert absolutize(markdown, GITHUB, "docs/") == (
        f"[up]({BLOB}LICENSE) ![here]({RAW}docs/shot.png) [root]({BLOB}x.md) [gone](../../x.md)"
    )


def test_mask_code_keeps_positions():
    text = "a `b` c\n```\nx\n```\nd"
    masked = mask_code(text)
    assert len(masked) == len(text)
    assert masked.count("\n") == text.count("\n")
    assert masked.startswith("a ") and masked.endswith("\nd") and "`" not in masked


def test_relative_target_and_listing():
    assert relative_target("a/../b.md#x") == "b.md#x"
    assert relative_target("#x") is None and relative_target("https://h/x") is None
    assert relative_links("[a](a.md) [b](https://x) `[c](c.md)` ![d](../d.png)") == [
        "a.md",
        "../d.png",
    ]


# --- size limits ------------------------------------------------------------------------------


def test_fit_overview_keeps_short_text():
    assert fit_overview("hello", 5) == ("hello", 5)


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("abcdef", 4, "abcd"),
        ("é" * 4, 5, "éé"),  # 2 bytes each: 5 bytes would split the third
        ("a😀b", 4, "a"),  # the emoji is 4 bytes: 1 + 4 > 4
        ("a😀b", 5, "a😀"),
    ],
)
def test_fit_overview_cuts_at_a_character_boundary(text, limit, expected):
    cut, size = fit_overview(text, limit)
    assert cut == expected
    assert size == len(text.encode())
    assert len(cut.encode()) <= limit


# --- prepare_page -------------------------------------------------------------------------


def settings_in(folder: Path, **environ: str):
    base = {"HUB_USERNAME": "alice", "HUB_TOKEN": "dckr_pat_x", "HUB_REPOSITORY": "alice/web"}
    return resolve_settings(flags={}, environ={**base, **environ}, dotenv={}, config={}, cwd=folder)


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    git(tmp_path, "init", "-q")
    git(tmp_path, "remote", "add", "origin", "git@github.com:alice/web.git")
    (tmp_path / "README.md").write_text("# Web\n![shot](docs/shot.png) [guide](docs/guide.md)\n")
    git(tmp_path, "add", "README.md")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init")
    return tmp_path


def head(folder: Path) -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_page_from_the_readme_with_links_from_the_remote(repo):
    page = prepare_page(settings_in(repo, HUB_DESCRIPTION="A web server"))
    rev = head(repo)
    assert page.description == "A web server"
    assert page.overview == (
        f"# Web\n![shot](https://github.com/alice/web/raw/{rev}/docs/shot.png) "
        f"[guide](https://github.com/alice/web/blob/{rev}/docs/guide.md)\n"
    )
    assert page.warnings == ()


def test_readme_in_a_subfolder_of_the_work_tree(repo):
    (repo / "docs").mkdir()
    (repo / "docs" / "HUB.md").write_text("[back](../README.md)\n")
    page = prepare_page(settings_in(repo, HUB_README="docs/HUB.md"))
    assert page.overview == f"[back](https://github.com/alice/web/blob/{head(repo)}/README.md)\n"


def test_unknown_remote_sends_links_as_they_are_with_a_warning(repo):
    git(repo, "remote", "set-url", "origin", "https://git.example.com/alice/web.git")
    page = prepare_page(settings_in(repo))
    assert "](docs/shot.png)" in (page.overview or "")
    assert len(page.warnings) == 1 and "neither GitHub nor GitLab" in page.warnings[0]


def test_no_git_at_all_warns_about_relative_links(tmp_path):
    (tmp_path / "README.md").write_text("[a](a.md)\n")
    page = prepare_page(settings_in(tmp_path))
    assert page.overview == "[a](a.md)\n"
    assert "no git remote" in page.warnings[0]


def test_description_over_100_characters_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="101 characters long; Docker Hub allows 100"):
        prepare_page(settings_in(tmp_path, HUB_DESCRIPTION="x" * 101))
    assert prepare_page(settings_in(tmp_path, HUB_DESCRIPTION="é" * 100)).description == "é" * 100


def test_long_overview_truncated_with_a_warning_or_refused_when_strict(tmp_path):
    (tmp_path / "README.md").write_text("é" * 13_000)  # 26,000 bytes
    page = prepare_page(settings_in(tmp_path))
    assert page.overview == "é" * 12_500
    assert "26,000 bytes; Docker Hub keeps 25,000" in page.warnings[0]
    with pytest.raises(ConfigError, match="--strict refuses to truncate"):
        prepare_page(settings_in(tmp_path), strict=True)


def test_missing_readme(tmp_path):
    with pytest.raises(ConfigError, match="overview file .*NOPE.md.* not found"):
        prepare_page(settings_in(tmp_path, HUB_README="NOPE.md"))
    with pytest.raises(ConfigError, match="nothing to put on the Docker Hub page"):
        prepare_page(settings_in(tmp_path))
    only = prepare_page(settings_in(tmp_path, HUB_DESCRIPTION="short"))
    assert only == Page(description="short", overview=None)
    assert only.fields() == {"description": "short"}


def test_changes_are_only_the_fields_that_differ():
    page = Page(description="d", overview="o")
    assert page.changes({"description": "d", "full_description": "o"}) == {}
    assert page.changes({"description": "d", "full_description": None}) == {"full_description": "o"}
    assert Page(description=None, overview="o").changes({"description": "old"}) == {
        "full_description": "o"
    }


def test_settings_validate_the_new_keys(tmp_path):
    with pytest.raises(ConfigError, match="HUB_VISIBILITY.*not one of public, private"):
        settings_in(tmp_path, HUB_VISIBILITY="secret")
    with pytest.raises(ConfigError, match="HUB_API_URL.*not an http"):
        settings_in(tmp_path, HUB_API_URL="hub.docker.com")
    settings = settings_in(tmp_path, HUB_API_URL="http://127.0.0.1:9/", HUB_VISIBILITY="Private")
    assert settings.api_url == "http://127.0.0.1:9" and settings.visibility == "private"
    described = settings_in(tmp_path, HUB_DESCRIBE="yes")
    assert described.describe_after_release is True
    assert described.source_of("describe") == "HUB_DESCRIBE in the environment"


def test_a_registry_without_the_hub_api_sends_nothing_but_still_checks_the_page(tmp_path):
    """Bad input is said now, not when the project moves to Docker Hub."""

    from hubtasks.dockerhub.describe import SKIPPED, describe
    from hubtasks.pipeline.session import Session

    local = {"HUB_REGISTRY": "127.0.0.1:5000"}
    session = Session(console=make_console("plain"))
    with pytest.raises(ConfigError, match="NOPE.md.* not found"):
        describe(settings_in(tmp_path, HUB_README="NOPE.md", **local), session=session)
    with pytest.raises(ConfigError, match="101 characters long"):
        describe(settings_in(tmp_path, HUB_DESCRIPTION="x" * 101, **local), session=session)
    fine = describe(settings_in(tmp_path, HUB_DESCRIPTION="short", **local), session=session)
    assert fine.action == SKIPPED
    assert "is not Docker Hub, so nothing was sent" in session.console.err.getvalue()


def test_the_release_stage_on_another_registry_checks_nothing_it_cannot_send(tmp_path):
    """`HUB_DESCRIBE=true` on ghcr.io with no README: the release does not fail (--strict)
    over a page that could never be sent."""

    from hubtasks.dockerhub.describe import sync_after_release
    from hubtasks.pipeline.session import Session

    settings = settings_in(tmp_path, HUB_REGISTRY="ghcr.io", HUB_DESCRIBE="true")
    session = Session(console=make_console("plain"))
    assert sync_after_release(settings, session, strict=True) is None
    assert "ghcr.io is not Docker Hub: no repository page to update" in (
        session.console.err.getvalue()
    )
