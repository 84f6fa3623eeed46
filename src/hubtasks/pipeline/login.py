"""`login` and `logout`: check the credentials against the registry (as `docker login` does,
never a cached answer), and store or remove them in Docker's config only when asked."""

from __future__ import annotations

from hubtasks.daemon.credentials import (
    from_docker_store,
    remove_credentials,
    save_credentials,
    with_docker_credentials,
)
from hubtasks.errors import HubError
from hubtasks.pipeline.execute import facts_for
from hubtasks.pipeline.mirror import own_hint
from hubtasks.pipeline.session import Session, session_for
from hubtasks.settings.resolve import Settings


def login(
    settings: Settings,
    *,
    save: bool = False,
    session: Session | None = None,
) -> str | None:
    """Check the credentials against the registry; with `save`, store them like docker login.

    Returns where the credentials were saved, or None. Within one session the registry is
    asked once per user (a saving login always runs).
    """
    settings = with_docker_credentials(settings)
    settings.require("login")
    repository = settings.require_repository()
    session = session_for(settings, session)
    key = session.login_key(settings)
    if key in session.logged_in and not save:
        return None
    facts = facts_for("login", repository, settings.tags)
    session.hooks.run("pre", facts)
    console = session.console
    with console.activity(
        "login", f"checking the credentials of {_who(settings)} at {repository.registry}"
    ):
        try:
            session.retrying(f"login to {repository.registry}", session.credential_check(settings))
        except HubError as error:  # a further registry's refusal names its own settings
            raise own_hint(error, settings).evolve(stage=error.stage or "login") from None
    session.logged_in.add(key)
    console.stage("login", f"logged in to {repository.registry} as {_who(settings)}")
    if console.verbose:
        console.stage("login", f"credentials from {settings.source_of('token')}")
    where = None
    if save and from_docker_store(settings):
        console.stage(
            "login",
            f"the credentials came from {settings.source_of('token')}: nothing to save",
        )
        save = False
    if save:
        username, token = settings.username or "", settings.token or ""  # required above
        where = save_credentials(repository, username, token, settings.docker_env)
        console.stage("login", f"credentials saved to {where}")
    session.hooks.run("post", facts)
    return where


def _who(settings: Settings) -> str:
    """Whose credentials, for people: the user, or Docker's identity token (it names none)."""
    return settings.username or "the identity token of Docker's credentials"


def logout(settings: Settings, *, session: Session | None = None) -> str | None:
    """Remove what `login(save=True)` stored for this registry, and nothing else: without
    HUB_USERNAME nobody can tell a `docker login`'s entry from ours, so nothing is removed."""
    session = session_for(settings, session)
    if not settings.username:
        session.console.stage(
            "logout",
            f"HUB_USERNAME is not set: the credentials saved for {settings.registry} (if any) "
            f"may be a `docker login`'s, left as they are (docker logout {settings.registry} "
            "removes them)",
        )
        return None
    where, other = remove_credentials(settings.registry, settings.docker_env, settings.username)
    if where:
        session.console.stage(
            "logout", f"removed the credentials for {settings.registry} from {where}"
        )
    elif other:
        session.console.stage(
            "logout",
            f"the credentials saved for {settings.registry} are {other}'s, not "
            f"{settings.username}'s: left as they are (docker logout removes them)",
        )
    else:
        session.console.stage("logout", f"no saved credentials for {settings.registry}")
    return where
