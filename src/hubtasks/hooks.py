"""Pre/post hooks around every stage, as shell commands (settings) or Python (registered).

Shell hooks come from `HUB_PRE_RELEASE`, `HUB_POST_PUSH`, … (or `hub.pre_release` in Invoke
config) and run through Invoke with the facts in their environment: HUB_STAGE, HUB_IMAGE,
HUB_TAGS, HUB_DIGEST, HUB_REFS. Python hooks are Invoke tasks or plain callables registered with
`hook("post_push", fn)`; they receive the Invoke context and a `Facts`.

A failing pre-hook stops its stage before any side effect; a failing post-hook fails the
command and says that the stage itself succeeded. Each hook runs once per invocation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, HookError

STAGES = ("login", "build", "tag", "push", "release")
HOOK_NAMES = tuple(f"{side}_{stage}" for stage in STAGES for side in ("pre", "post"))

HookFunction = Callable[[Any, "Facts"], Any]
_REGISTERED: dict[str, list[HookFunction]] = {}


@dataclass
class Facts:
    """What a hook is told: the stage, the image, its tags, digest and references."""

    stage: str
    image: str  # registry/namespace/name
    tags: list[str] = field(default_factory=list)
    digest: str | None = None
    refs: list[str] = field(default_factory=list)
    image_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # Multi-platform: each platform → its image ID (build) or manifest digest (push, release).
    platforms: dict[str, str] = field(default_factory=dict)

    def environment(self) -> dict[str, str]:
        return {
            "HUB_STAGE": self.stage,
            "HUB_IMAGE": self.image,
            "HUB_TAGS": " ".join(self.tags),
            "HUB_DIGEST": self.digest or "",
            "HUB_REFS": " ".join(self.refs),
            "HUB_IMAGE_ID": self.image_id or "",
            "HUB_PLATFORMS": " ".join(self.platforms),
            "HUB_PLATFORM_DIGESTS": " ".join(f"{p}={d}" for p, d in self.platforms.items()),
        }


def _check_name(name: str) -> str:
    if name not in HOOK_NAMES:
        raise ConfigError(f"unknown hook '{name}'; hooks are {', '.join(HOOK_NAMES)}")
    return name


def hook(name: str, function: HookFunction | None = None) -> Any:
    """Register a Python hook: `hook("post_push", notify)` or `@hook("post_push")`.

    `function` is an Invoke task or any callable taking (context, facts).
    """
    _check_name(name)

    def register(fn: HookFunction) -> HookFunction:
        _REGISTERED.setdefault(name, []).append(fn)
        return fn

    return register(function) if function is not None else register


def clear_hooks() -> None:
    """Forget every registered Python hook (for tests and long-lived processes)."""
    _REGISTERED.clear()


def _describe(fn: Any) -> str:
    return getattr(fn, "name", None) or getattr(fn, "__name__", None) or repr(fn)


class Hooks:
    """Runs the hooks of one invocation, each at most once."""

    def __init__(self, commands: Mapping[str, str | None], context: Any, say: Callable) -> None:
        self.commands = {k: v for k, v in commands.items() if v}
        self.context = context
        self.say = say
        self.ran: set[str] = set()

    def update_commands(self, commands: Mapping[str, str | None]) -> None:
        for name, command in commands.items():
            if command and name not in self.commands:
                self.commands[name] = command

    def run(self, side: str, facts: Facts) -> None:
        name = f"{side}_{facts.stage}"
        if name in self.ran:
            return
        self.ran.add(name)
        command = self.commands.get(name)
        if command:
            self._shell(name, command, facts)
        for fn in list(_REGISTERED.get(name, ())):
            self._python(name, fn, facts)

    def _failure(self, name: str, what: str, facts: Facts) -> HookError:
        if name.startswith("pre_"):
            return HookError(
                f"{name} hook {what}; the {facts.stage} stage did not run and nothing was changed"
            )
        done = f" ({' '.join(facts.refs)})" if facts.refs else ""
        return HookError(f"{name} hook {what}; the {facts.stage} stage itself succeeded{done}")

    def _shell(self, name: str, command: str, facts: Facts) -> None:
        self.say("hook", f"{name}: {command}")
        start = time.monotonic()
        try:
            result = self.context.run(
                command, env=facts.environment(), warn=True, hide=False, in_stream=False
            )
        except Exception as error:  # Invoke raises for a missing shell, a bad command, …
            raise self._failure(name, f"'{command}' could not run: {error}", facts) from None
        facts.timings[name] = time.monotonic() - start
        if result is None or result.exited != 0:
            code = "?" if result is None else result.exited
            raise self._failure(name, f"'{command}' failed with exit code {code}", facts)

    def _python(self, name: str, fn: HookFunction, facts: Facts) -> None:
        label = _describe(fn)
        self.say("hook", f"{name}: {label}()")
        try:
            fn(self.context, facts)
        except HookError:
            raise
        except SystemExit as error:
            if error.code not in (0, None):
                raise self._failure(name, f"{label} exited with {error.code}", facts) from None
        except Exception as error:
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            raise self._failure(name, f"{label} failed: {message}", facts) from None
