"""The Docker Hub repository page: its overview (a README) and short description.

What is sent is decided by pure functions (`source_form`, `absolutize`, `fit_overview`,
`prepare_page`'s checks); `describe` reads the page the Hub holds, creates the repository when
there is none and sends only what differs. `sync_after_release` is the release stage.

Links: relative links and images in the README are made absolute from the git remote and
revision, so they work on hub.docker.com — images to the raw file, other links to the file's
page (GitHub `…/blob/REV/path` and `…/raw/REV/path`, GitLab `…/-/blob/REV/path` and
`…/-/raw/REV/path`). Absolute URLs, `//host` URLs, anchors (`#…`), fenced code blocks and code
spans are left alone. Inline links `[t](u)`, images `![a](u)`, reference definitions
`[id]: u` and HTML `<img src>` / `<a href>` are rewritten; indented code blocks are not told
apart from text (a link-like text in one would be rewritten too).
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hubtasks.daemon.credentials import with_docker_credentials
from hubtasks.dockerhub import client as hub
from hubtasks.errors import ConfigError, HubError

if TYPE_CHECKING:
    from hubtasks.pipeline.session import Session
    from hubtasks.settings.resolve import Settings

RAW, BLOB = "raw", "blob"
CREATED, UPDATED, UNCHANGED, SKIPPED = "created", "updated", "unchanged", "skipped"
DEFAULT_README = "README.md"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(?<![`\\])(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.DOTALL)
_REFERENCE = re.compile(
    r"^ {0,3}\[((?:[^\]\\\n]|\\.)+)\]:[ \t]*\n?[ \t]*(<[^>\n]*>|\S+)", re.MULTILINE
)
_IMAGE_REFERENCE = re.compile(r"!\[([^\]]*)\]\[([^\]]*)\]|!\[([^\]]+)\](?![\[(:])")
_HTML_URL = re.compile(
    r"<(?P<tag>img|a|source)\b[^>]*?\b(?P<attr>src|href)\s*=\s*(?P<q>[\"'])(?P<url>.*?)(?P=q)",
    re.IGNORECASE | re.DOTALL,
)


# --- where files of the repository live on the web ---------------------------------------


@dataclass(frozen=True)
class SourceForm:
    """URL prefixes (ending in `/`) of files at one revision: their page and their bytes."""

    blob: str
    raw: str


def source_form(remote_url: str, revision: str) -> SourceForm | None:
    """GitHub or GitLab web URLs for a git remote (https, ssh:// or scp form); None for a
    host whose URL form is unknown."""
    url = remote_url.strip()
    scp = re.fullmatch(r"(?:[^@/]+@)?([^:/]+):(?!//)(.+)", url)
    if scp and "://" not in url:
        url = f"https://{scp.group(1)}/{scp.group(2)}"
    split = urllib.parse.urlsplit(url)
    host = (split.hostname or "").lower()
    path = split.path.strip("/").removesuffix(".git")
    if not host or "/" not in path:
        return None
    netloc = host if split.scheme not in ("http", "https") or not split.port else split.netloc
    netloc = netloc.rpartition("@")[2]
    base = f"https://{netloc}/{path}"
    if "github" in host:
        return SourceForm(f"{base}/blob/{revision}/", f"{base}/raw/{revision}/")
    if "gitlab" in host:
        return SourceForm(f"{base}/-/blob/{revision}/", f"{base}/-/raw/{revision}/")
    return None


# --- finding link destinations in markdown -------------------------------------------------


def _mask(start: int, end: int, masked: list[str]) -> None:
    for index in range(start, end):
        if masked[index] != "\n":
            masked[index] = "\0"


def mask_code(markdown: str) -> str:
    """The text with fenced code blocks and code spans blanked out (same length, same line
    breaks), so that nothing inside them is taken for a link."""
    masked = list(markdown)
    offset, fence = 0, ""
    for line in markdown.splitlines(keepends=True):
        opener = _FENCE.match(line)
        if fence:
            _mask(offset, offset + len(line), masked)
            stripped = line.strip()
            if opener and stripped == stripped[0] * len(stripped) and stripped[0] == fence[0]:
                fence = "" if len(stripped) >= len(fence) else fence
        elif opener:
            fence = opener.group(1)
            _mask(offset, offset + len(line), masked)
        offset += len(line)
    text = "".join(masked)
    for span in _CODE_SPAN.finditer(text):
        _mask(span.start(), span.end(), masked)
    return "".join(masked)


def _opening_bracket(text: str, close: int) -> int | None:
    """Index of the `[` that the `]` at `close` closes (escaped brackets do not count)."""
    depth = 0
    for index in range(close - 1, -1, -1):
        char = text[index]
        if index > 0 and text[index - 1] == "\\":
            continue
        if char == "]":
            depth += 1
        elif char == "[":
            if depth == 0:
                return index
            depth -= 1
    return None


def _skip_blanks(text: str, index: int) -> int:
    """Past spaces and tabs, and at most one line break among them."""
    while index < len(text) and text[index] in " \t":
        index += 1
    if index < len(text) and text[index] == "\n":
        index += 1
        while index < len(text) and text[index] in " \t":
            index += 1
    return index


def _destination(text: str, start: int) -> tuple[int, int] | None:
    """The span of an inline link's destination that begins at `start` (after `(`)."""
    index = _skip_blanks(text, start)
    if index < len(text) and text[index] == "<":
        end = text.find(">", index)
        if end == -1 or "\n" in text[index:end]:
            return None
        return index + 1, end
    depth, end = 0, index
    while end < len(text):
        char = text[end]
        if char == "\\":
            end += 2
            continue
        if char.isspace() or char == "\0":
            break
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                break
            depth -= 1
        end += 1
    return (index, end) if end > index else None


def _image_labels(masked: str) -> set[str]:
    labels = set()
    for match in _IMAGE_REFERENCE.finditer(masked):
        full, alt, shortcut = match.group(2), match.group(1), match.group(3)
        label = full if full else (alt if full == "" else shortcut)
        if label:
            labels.add(" ".join(label.lower().split()))
    return labels


def link_spans(markdown: str) -> list[tuple[int, int, str]]:
    """(start, end, RAW or BLOB) of every link destination outside code, in text order."""
    masked = mask_code(markdown)
    spans: dict[int, tuple[int, int, str]] = {}
    for match in re.finditer(r"\]\(", masked):
        opening = _opening_bracket(masked, match.start())
        found = _destination(masked, match.end()) if opening is not None else None
        if found and opening is not None:
            image = opening > 0 and masked[opening - 1] == "!"
            spans[found[0]] = (*found, RAW if image else BLOB)
    images = _image_labels(masked)
    for match in _REFERENCE.finditer(masked):
        start, end = match.span(2)
        if match.group(2).startswith("<"):
            start, end = start + 1, end - 1
        label = " ".join(match.group(1).lower().split())
        spans[start] = (start, end, RAW if label in images else BLOB)
    for match in _HTML_URL.finditer(masked):
        kind = BLOB if match.group("tag").lower() == "a" else RAW
        spans[match.start("url")] = (match.start("url"), match.end("url"), kind)
    return [spans[start] for start in sorted(spans)]


def rewrite_links(markdown: str, rewrite: Callable[[str, str], str]) -> str:
    """`markdown` with each link destination `url` replaced by `rewrite(url, kind)`."""
    pieces, last = [], 0
    for start, end, kind in link_spans(markdown):
        pieces.append(markdown[last:start])
        pieces.append(rewrite(markdown[start:end], kind))
        last = end
    pieces.append(markdown[last:])
    return "".join(pieces)


def relative_target(url: str, folder: str = "") -> str | None:
    """The repository path a relative URL points at (query and fragment kept), or None for
    an absolute URL, an anchor, or a path that leaves the repository."""
    if not url or url.startswith(("#", "//")) or _SCHEME.match(url):
        return None
    path, rest = url, ""
    cut = min((i for i in (url.find("?"), url.find("#")) if i != -1), default=-1)
    if cut != -1:
        path, rest = url[:cut], url[cut:]
    if not path:
        return None
    joined = posixpath.normpath(path.lstrip("/") if path.startswith("/") else folder + path)
    if joined == ".." or joined.startswith("../"):
        return None
    joined = "" if joined == "." else joined
    if path.endswith("/") and joined:
        joined += "/"
    return joined + rest


def absolutize(markdown: str, form: SourceForm, folder: str = "") -> str:
    """Relative link destinations made absolute: images to `form.raw`, links to `form.blob`.
    `folder` is the README's folder inside the repository (`""` or `"docs/"`)."""

    def rewrite(url: str, kind: str) -> str:
        target = relative_target(url, folder)
        if target is None:
            return url
        return (form.raw if kind == RAW else form.blob) + target

    return rewrite_links(markdown, rewrite)


def relative_links(markdown: str) -> list[str]:
    """The relative link destinations in `markdown` (what `absolutize` would change)."""
    found: list[str] = []

    def collect(url: str, _kind: str) -> str:
        if relative_target(url) is not None or url.startswith("../"):
            found.append(url)
        return url

    rewrite_links(markdown, collect)
    return found


def fit_overview(text: str, limit: int = hub.OVERVIEW_LIMIT) -> tuple[str, int]:
    """(text cut to at most `limit` UTF-8 bytes at a character boundary, its size before)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text, len(data)
    return data[:limit].decode("utf-8", errors="ignore"), len(data)


# --- what to send --------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """The page fields to send (None: leave that field alone) and warnings for a person."""

    description: str | None
    overview: str | None
    warnings: tuple[str, ...] = ()

    def fields(self) -> dict[str, str]:
        found = {"description": self.description, "full_description": self.overview}
        return {name: value for name, value in found.items() if value is not None}

    def changes(self, current: dict[str, object]) -> dict[str, str]:
        """The fields whose value on the Hub differs from ours."""
        return {k: v for k, v in self.fields().items() if (current.get(k) or "") != v}


def _read_readme(settings: Settings) -> tuple[Path, str] | None:
    explicit = settings.readme is not None
    path = settings.readme or settings.cwd / DEFAULT_README
    if not path.is_file():
        if explicit:
            raise ConfigError(
                f"overview file '{path}' ({settings.source_of('readme')}) not found; set "
                "HUB_README or --readme to the file to show on Docker Hub"
            )
        return None
    try:
        return path, path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read the overview file {path}: {error}") from None


def _links_for(path: Path, text: str) -> tuple[str, str | None]:
    """The README with relative links made absolute, and a warning when they cannot be."""
    from hubtasks.build.gitinfo import folder_in_repository, read_git

    relative = relative_links(text)
    if not relative:
        return text, None
    git = read_git(path.parent)
    form = source_form(git.remote_url, git.revision) if git and git.remote_url else None
    folder = folder_in_repository(path.parent) if form else None
    if form is None or folder is None:
        why = (
            f"the git remote {git.remote_url} is neither GitHub nor GitLab"
            if git and git.remote_url
            else "there is no git remote to point them at"
        )
        return text, (
            f"{len(relative)} relative link(s) in {path.name} (e.g. '{relative[0]}') are sent as "
            f"they are and will not work on Docker Hub: {why}"
        )
    return absolutize(text, form, folder), None


def prepare_page(settings: Settings, *, strict: bool = False) -> Page:
    """Read, check and shape what `describe` sends; raises `ConfigError` before anything is
    sent (a description over 100 characters; an overview over 25,000 bytes with `strict`)."""
    warnings: list[str] = []
    description = settings.description
    if description is not None and len(description) > hub.DESCRIPTION_LIMIT:
        raise ConfigError(
            f"{settings.source_of('description')}: the short description is "
            f"{len(description)} characters long; Docker Hub allows {hub.DESCRIPTION_LIMIT}"
        )
    overview = None
    found = _read_readme(settings)
    if found is not None:
        path, text = found
        overview, warning = _links_for(path, text)
        warnings.extend([warning] if warning else [])
        overview, size = fit_overview(overview)
        if size > hub.OVERVIEW_LIMIT:
            over = (
                f"the overview from {path.name} is {size:,} bytes; Docker Hub keeps "
                f"{hub.OVERVIEW_LIMIT:,}"
            )
            if strict:
                raise ConfigError(f"{over}: shorten it (--strict refuses to truncate)")
            warnings.append(f"{over}: sending the first {len(overview.encode()):,} bytes")
    if description is None and overview is None:
        raise ConfigError(
            f"nothing to put on the Docker Hub page: no {DEFAULT_README} in {settings.cwd} "
            "and no HUB_DESCRIPTION; set HUB_README or HUB_DESCRIPTION"
        )
    return Page(description=description, overview=overview, warnings=tuple(warnings))


# --- talking to the Hub -------------------------------------------------------------------


@dataclass(frozen=True)
class DescribeResult:
    repository: str
    action: str  # CREATED, UPDATED, UNCHANGED or SKIPPED
    fields: tuple[str, ...] = ()
    url: str | None = None


_FIELD_NAMES = {"description": "short description", "full_description": "overview"}


def describe(
    settings: Settings, *, strict: bool = False, session: Session | None = None
) -> DescribeResult:
    """Make the Docker Hub page of the repository show the README and HUB_DESCRIPTION:
    create the repository (HUB_VISIBILITY) when it does not exist, else change only the
    fields that differ. On a registry that is not Docker Hub nothing is sent, but the page is
    checked all the same: bad input is said now, not when the project moves to Docker Hub."""
    from hubtasks.pipeline.session import session_for

    repository = settings.require_repository()
    session = session_for(settings, session)
    console = session.console
    page = prepare_page(settings, strict=strict)
    for warning in page.warnings:
        console.warn(warning)
    base = hub.api_url(settings)
    if base is None:
        console.stage(
            "describe",
            f"the repository page is a Docker Hub feature; {repository.registry} is not Docker "
            "Hub, so nothing was sent (set HUB_API_URL if it has the Docker Hub API)",
        )
        return DescribeResult(str(repository), SKIPPED)
    settings = with_docker_credentials(settings)
    session.adopt(settings)  # the token may be Docker's: redact it from here on
    settings.require("login")
    namespace, name = hub.split_path(repository)
    client = hub.HubClient(base, settings.username or "", settings.token or "")
    where = f"{namespace}/{name}"
    with console.activity("describe", f"reading the Docker Hub page of {where}"):
        current = session.retrying(
            f"reading {where} on Docker Hub", lambda: client.repository(namespace, name)
        )
    if current is None:
        action, fields = _create(settings, client, page, namespace, name, session)
    else:
        action, fields = _update(settings, client, page, current, session, where)
    url = hub.page_url(base, namespace, name)
    shown = f" ({', '.join(_FIELD_NAMES[f] for f in fields)})" if fields else ""
    console.stage("describe", f"{url}: {action}{shown}")
    return DescribeResult(str(repository), action, tuple(fields), url)


def _create(
    settings: Settings,
    client: hub.HubClient,
    page: Page,
    namespace: str,
    name: str,
    session: Session,
) -> tuple[str, list[str]]:
    private = settings.visibility == "private"
    created = session.retrying(
        f"creating {namespace}/{name} on Docker Hub",
        lambda: client.create_repository(
            namespace,
            name,
            description=page.description,
            full_description=page.overview,
            private=private,
        ),
    )
    if not created:  # an earlier, retried create arrived after all, or another run's: update
        current = client.repository(namespace, name) or {}
        return _update(settings, client, page, current, session, f"{namespace}/{name}")
    session.console.stage(
        "describe", f"created {'private' if private else 'public'} repository {namespace}/{name}"
    )
    return CREATED, list(page.fields())


def _update(
    settings: Settings,
    client: hub.HubClient,
    page: Page,
    current: dict[str, object],
    session: Session,
    where: str,
) -> tuple[str, list[str]]:
    wanted_private = settings.visibility == "private"
    if settings.source_of("visibility") != "default" and bool(current.get("is_private")) != (
        wanted_private
    ):
        session.console.warn(
            f"{where} is {'private' if current.get('is_private') else 'public'} on Docker Hub "
            f"and HUB_VISIBILITY says {settings.visibility}; describe only sets the visibility "
            "of a repository it creates"
        )
    changes = page.changes(current)
    if not changes:
        return UNCHANGED, []
    namespace, _, name = where.partition("/")
    session.retrying(
        f"updating the page of {where} on Docker Hub",
        lambda: client.update_repository(namespace, name, changes),
    )
    return UPDATED, list(changes)


def sync_after_release(settings: Settings, session: Session, *, strict: bool = False) -> str | None:
    """The release stage after verify, when HUB_DESCRIBE (or --describe) asks for it.

    Returns None when there was nothing to do or the page is in step. A failure returns its
    warning text, already printed on the session's console: the image is published, so the
    release still succeeds. With `strict` the failure is raised instead (and an overview over
    the limit is refused rather than truncated).
    """
    if not settings.describe_after_release:
        return None
    if hub.api_url(settings) is None:  # nothing could be sent: no page to check either
        repository = settings.require_repository()
        session.console.stage(
            "describe", f"{repository.registry} is not Docker Hub: no repository page to update"
        )
        return None
    try:
        describe(settings, strict=strict, session=session)
    except HubError as error:
        text = f"the image is published, but the Docker Hub page was not updated: {error}"
        if strict:
            raise error.evolve(text, stage="describe") from None
        session.console.warn(text)
        return text
    return None
