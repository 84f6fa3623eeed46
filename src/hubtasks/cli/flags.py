"""Every flag of every task, declared once and built from two tables.

The settings' flags are rows of `settings.KEYS` (help, short flag, value placeholder, kind and
`Key.tasks`, the tasks that take the flag); the other options are `OPTIONS` below, named by the
task parameter that receives them. `hub_task` makes an Invoke task of a function whose own
signature lists only its options: it adds a parameter for every key whose `tasks` names the
task, and hands the function those values as `flags` (by setting name, what `load_settings`
takes). `HubTask` builds Invoke's arguments (help, short flag, repeatable, `--[no-]…`) from
the same tables, by parameter name.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, overload

from invoke import Context, Task
from invoke.parser import Argument

from hubtasks.settings.keys import KEYS, Key


class YesNo(Argument):
    """A yes/no flag that may also be left off: `--x` gives True, `--no-x` False, neither None
    (so that a setting from the environment or `.env` applies).

    Invoke registers `--no-x` only for a bool argument whose default is True
    (`ParserContext.add_arg`) and reports that default when the flag is absent; this argument
    is declared that way and reports None unless one of the two forms was given.
    """

    def __init__(self, *, inverse: bool = True, **kwargs: Any) -> None:
        # Without `inverse` (a flag already named `--no-x`, as docker's `--no-cache`), no
        # `--no-no-x`: the flag turns it on, HUB_NO_X=0 (or its absence) leaves it off.
        super().__init__(kind=bool, default=inverse, **kwargs)

    @property
    def value(self) -> bool | None:
        return None if self.raw_value is None else bool(self.raw_value)

    @value.setter
    def value(self, given: Any) -> None:
        self.set_value(given)


class Repeatable(Argument):
    """A flag given once per value (`--tag a --tag b`). Invoke starts a list flag with a value
    (an empty list), so `--tag` with nothing after it, or followed by another flag (`-t -n`,
    `--tag $UNSET_VARIABLE`), passed as if it was never given. Here it counts as an empty
    value, which the settings refuse as they refuse `--tag ""`.

    How: the flag is `optional` and says it has no value while it has none, so the parser,
    done with it, hands it `True` ("seen without a value"). Invoke tells an argument nothing
    when it is given again, so `--tag v1 --tag $UNSET` is still read as `--tag v1`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(kind=list, default=[], optional=True, **kwargs)

    @property
    def raw_value(self) -> Any:
        return self._raw or None  # "no value yet": what the parser asks

    @raw_value.setter
    def raw_value(self, given: Any) -> None:
        self._raw = given

    def set_value(self, value: Any, cast: bool = True) -> None:
        if value is True and not cast:  # seen without a value
            value = ""
        super().set_value(value, cast=True)


@dataclass(frozen=True)
class Flag:
    """One task flag: its names (long, then short), help and kind, and the setting it fills."""

    names: tuple[str, ...]
    help: str
    kind: type = str  # str (takes a value), bool, or list (repeatable)
    setting: str | None = None

    def argument(self, parameter: str) -> Argument:
        """The Invoke argument for the task parameter `parameter` (`json_`, `build_arg`)."""
        attr_name = parameter if parameter != self.names[0] else None
        if self.kind is bool and self.setting:
            inverse = not self.names[0].startswith("no-")
            return YesNo(names=self.names, help=self.help, attr_name=attr_name, inverse=inverse)
        if self.kind is list:
            return Repeatable(names=self.names, help=self.help, attr_name=attr_name)
        default = {list: [], bool: False}.get(self.kind)
        return Argument(
            names=self.names, kind=self.kind, default=default, help=self.help, attr_name=attr_name
        )


def setting_flag(key: Key) -> Flag:
    """A setting's flag, described from its row in `settings.KEYS`."""
    long = (key.flag or key.name).removeprefix("--")
    names = (long, *([key.short.lstrip("-")] if key.short else []))
    default = key.shown_default or ("off" if key.default is False else key.default)
    where = f"default: {key.env}" + (f", else {default}" if default not in (None, "") else "")
    if key.kind in ("list", "pairs", "repositories"):
        value = key.metavar or "VALUE"
        text = f"{value}: {key.help[:1].lower()}{key.help[1:]}; repeat for more ({where})."
        return Flag(names, text, list, key.name)
    return Flag(names, f"{key.help} ({where}).", bool if key.kind == "bool" else str, key.name)


OPTIONS: dict[str, Flag] = {
    "force": Flag(
        ("force", "f"), "Overwrite version tags the registry holds for another image.", bool
    ),
    "allow_dirty": Flag(
        ("allow-dirty",), "Allow a default tag from git although the work tree has changes.", bool
    ),
    "dry_run": Flag(
        ("dry-run", "n"),
        "Print the plan (release, promote: with the equivalent docker commands); change nothing.",
        bool,
    ),
    "json_": Flag(
        ("json", "j"),
        'Print one JSON document on stdout, the result or {"error": …} (human output on stderr).',
        bool,
    ),
    "quiet": Flag(("quiet", "q"), "Print only the final references (and errors).", bool),
    "verbose": Flag(
        ("verbose", "v"), "Show the whole build log and every layer, even on a terminal.", bool
    ),
    "save": Flag(
        ("save", "s"),
        "Store the credentials like `docker login` (credential helper, else "
        "~/.docker/config.json); without it nothing is written.",
        bool,
    ),
    "strict": Flag(
        ("strict",),
        "release: a failed Docker Hub page update fails the release (default: a warning); "
        "describe: refuse an overview over 25,000 bytes instead of truncating it.",
        bool,
    ),
    "match": Flag(
        ("match", "m"),
        "Glob of the tags to consider, e.g. 'sha-*' (required). Version tags only when the "
        "pattern starts with a version, e.g. 'v1.*'.",
    ),
    "keep": Flag(("keep", "k"), "Keep this many of the most recently pushed matching tags."),
    "older_than": Flag(
        ("older-than", "o"), "Only tags pushed longer ago than this, e.g. 30d, 12h, 2w."
    ),
    "yes": Flag(("yes", "y"), "Delete; without it the tags are only listed.", bool),
    "source": Flag(
        ("source",),  # no -s: promote has --semver
        "tag: the local image to tag, a tag of the repository, a reference or an image ID "
        "(default: the image built earlier on this command line, else latest). promote: the "
        "image in the registry to publish, a tag or sha256:… digest of the repository, or "
        "[REGISTRY/]namespace/name:tag in another repository (of this registry or another).",
    ),
}
FLAGS: dict[str, Flag] = {
    **{key.parameter: setting_flag(key) for key in KEYS if key.parameter},
    **OPTIONS,
}


class HubTask(Task[Callable[..., None]]):
    """A task whose arguments come from `FLAGS`, by parameter name."""

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        return [FLAGS[name].argument(name) for name in self.argspec(self.body).parameters]


def settings_flags(**given: object) -> dict[str, object]:
    """Task parameters by the setting they fill: `tag` → `tags`, `build_arg` → `build_args`."""
    flags: dict[str, object] = {}
    for parameter, value in given.items():
        setting = FLAGS[parameter].setting
        if setting is None:
            raise TypeError(f"--{FLAGS[parameter].names[0]} is not a setting's flag")
        flags[setting] = value
    return flags


def keys_of(task_name: str) -> tuple[Key, ...]:
    """The settings whose flag the task takes (`Key.tasks`), in table order."""
    return tuple(key for key in KEYS if key.parameter and task_name in key.tasks)


TaskBody = Callable[..., None]


@overload
def hub_task(body: TaskBody) -> HubTask: ...
@overload
def hub_task(*, name: str) -> Callable[[TaskBody], HubTask]: ...
def hub_task(
    body: TaskBody | None = None, *, name: str | None = None
) -> HubTask | Callable[[TaskBody], HubTask]:
    """`@hub_task` (or `@hub_task(name="tag")`): an Invoke task whose parameters are the
    function's own options (after the context and `flags`) plus a flag for every setting
    whose `Key.tasks` names the task. The function gets those settings' values as `flags`,
    by setting name (`{"tags": [...], "semver": None}`), ready for `load_settings`."""

    def make(body: TaskBody) -> HubTask:
        task_name = name or body.__name__
        keys = keys_of(task_name)
        context, flags, *options = inspect.signature(body).parameters.values()
        if flags.name != "flags":
            raise TypeError(f"task {task_name}: the parameter after the context is `flags`")
        clash = {str(key.parameter) for key in keys} & {option.name for option in options}
        if clash:  # a setting's flag and an option of the same name: one would hide the other
            raise TypeError(f"task {task_name}: {', '.join(sorted(clash))} is a setting's flag")
        settings = [
            inspect.Parameter(
                str(key.parameter), inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Any
            )
            for key in keys
        ]

        @functools.wraps(body)
        def run(c: Context, **given: Any) -> None:
            values: Mapping[str, object] = {
                key.name: given.pop(str(key.parameter), None) for key in keys
            }
            body(c, values, **given)

        keyword_options = [
            option.replace(kind=inspect.Parameter.KEYWORD_ONLY) for option in options
        ]
        run.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [context, *settings, *keyword_options], return_annotation=None
        )
        return HubTask(run, name=name)

    return make(body) if body is not None else make
