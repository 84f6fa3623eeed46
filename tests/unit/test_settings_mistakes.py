"""What people mistype (issue 26 items 4, 6, 7): misspelt HUB_* names, SOURCE_DATE_EPOCH out of
range, a token with spaces around it. Pure resolution first, then the command line and doctor
in a throwaway project (no daemon: DOCKER_HOST is a dead socket)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubtasks.errors import ConfigError
from hubtasks.pipeline.hooks import Facts
from hubtasks.settings.keys import KEYS
from hubtasks.settings.mistakes import OTHER_NAMES, unknown_names
from hubtasks.settings.resolve import resolve_settings
from tests.helpers.cli import GOOD_ENV, TOKEN, invoke, make_project

BASE = {"HUB_USERNAME": "u", "HUB_TOKEN": "t", "HUB_REPOSITORY": "app"}


def resolve(*, environ=None, dotenv=None):
    return resolve_settings(
        flags={}, environ=environ or {}, dotenv=dotenv or {}, config={}, cwd=Path("/work")
    )


# --- 4. misspelt names ------------------------------------------------------------------------


def test_unknown_names_in_env_file_are_named_with_the_closest_setting():
    settings = resolve(dotenv={**BASE, "HUB_TAG": "v9", "HUB_SEMVR": "true", "HUB_XYZZY": "1"})
    assert settings.unknown_names == (
        "HUB_SEMVR in .env is not a hubtasks setting; did you mean HUB_SEMVER?",
        "HUB_TAG in .env is not a hubtasks setting; did you mean HUB_TAGS?",
        "HUB_XYZZY in .env is not a hubtasks setting; it is ignored",
    )
    assert settings.tags == () and settings.semver is False  # still ignored, but said


def test_in_the_environment_only_names_close_to_a_setting_are_named():
    settings = resolve(environ={**BASE, "HUB_TIMOUT": "5", "HUB_PROTOCOL": "https"})
    assert settings.unknown_names == (
        "HUB_TIMOUT in the environment is not a hubtasks setting; did you mean HUB_TIMEOUT?",
    )  # HUB_PROTOCOL is GitHub's `hub`'s


def test_unknown_names_in_invoke_config_are_named_with_the_closest_setting():
    """`hub.semvr: true` in invoke.yaml was ignored without a word (doctor: every value valid)."""
    settings = resolve_settings(
        flags={},
        environ=BASE,
        dotenv={},
        config={"semvr": True, "tag": "v9", "pre_release": "true", "repository": "app"},
        cwd=Path("/work"),
    )
    assert settings.unknown_names == (
        "hub.semvr in Invoke config is not a hubtasks setting; did you mean hub.semver?",
        "hub.tag in Invoke config is not a hubtasks setting; did you mean hub.tags?",
    )


def test_every_known_name_passes():
    known = {key.env: "x" for key in KEYS} | dict.fromkeys(OTHER_NAMES, "x")
    assert unknown_names([key.env for key in KEYS], known, known) == []


def test_the_facts_hooks_get_are_known_names():
    assert set(Facts(stage="push", image="r/a", tags=["v1"]).environment()) <= OTHER_NAMES | {
        key.env for key in KEYS
    }


def test_a_missing_setting_names_the_typo_set_instead():
    settings = resolve(dotenv={"HUB_USERNAME": "u", "HUB_TOKEN": "t", "HUB_REPOSITRY": "app"})
    with pytest.raises(ConfigError) as info:
        settings.require("push")
    assert "HUB_REPOSITORY (or --repository) (HUB_REPOSITRY in .env" in str(info.value)
    assert "did you mean HUB_REPOSITORY?" in str(info.value)
    with pytest.raises(ConfigError, match="HUB_REPOSITRY in .env"):
        settings.require_repository()


def test_the_command_line_warns_and_doctor_fails(tmp_path):
    project = make_project(tmp_path, GOOD_ENV + "HUB_SEMVR=true\n")
    released = invoke(project, "release", "--dry-run")
    assert (
        "warning: HUB_SEMVR in .env is not a hubtasks setting; did you mean HUB_SEMVER?"
        in released.stderr
    )
    doctor = invoke(project, "doctor")
    assert doctor.returncode == 1
    assert "✗ setting names" in doctor.stdout and "HUB_SEMVR" in doctor.stdout


# --- 6. SOURCE_DATE_EPOCH out of range ------------------------------------------------------


@pytest.mark.parametrize("value", ["253402300800", "99999999999999"])
def test_source_date_epoch_past_year_9999_is_a_settings_error(value):
    with pytest.raises(ConfigError, match=f"SOURCE_DATE_EPOCH: '{value}' is after 9999"):
        resolve(environ={**BASE, "SOURCE_DATE_EPOCH": value})
    assert resolve(environ={**BASE, "SOURCE_DATE_EPOCH": "253402300799"}).source_date_epoch


def test_source_date_epoch_out_of_range_exits_2_and_fails_doctor(tmp_path):
    project = make_project(tmp_path, GOOD_ENV + "SOURCE_DATE_EPOCH=253402300800\n")
    built = invoke(project, "build")
    assert built.returncode == 2, built.stderr
    assert built.stderr.strip().splitlines()[-1].startswith("hubtasks: SOURCE_DATE_EPOCH")
    doctor = invoke(project, "doctor")
    assert "✗ settings" in doctor.stdout and "SOURCE_DATE_EPOCH" in doctor.stdout


# --- 7. a token with spaces around it --------------------------------------------------------


def test_a_token_is_kept_as_written_with_a_warning():
    settings = resolve(dotenv={**BASE, "HUB_TOKEN": "trail "})
    assert settings.token == "trail "
    assert settings.token_warning is not None
    assert "HUB_TOKEN (HUB_TOKEN in .env) starts or ends with a space" in settings.token_warning
    assert "trail" not in settings.token_warning.replace("HUB_TOKEN", "")
    assert resolve(dotenv=BASE).token_warning is None
    assert resolve(dotenv={**BASE, "HUB_TOKEN": "   "}).token is None  # blank: not given


def test_the_spaced_token_warning_never_shows_the_token(tmp_path):
    env = GOOD_ENV.replace(f"HUB_TOKEN={TOKEN}", f"HUB_TOKEN='{TOKEN} '")
    result = invoke(make_project(tmp_path, env), "release", "--dry-run")
    assert "starts or ends with a space" in result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_a_further_registrys_credentials_are_no_typo():
    from hubtasks.settings.mistakes import unknown_names

    dotenv = {"HUB_REGISTRY_GHCR_IO_TOKEN": "x", "HUB_REGISTRY_GHCR_IO_USERNAME": "a"}
    assert unknown_names([key.env for key in KEYS], {}, dotenv) == []
    assert unknown_names([key.env for key in KEYS], {}, {"HUB_REGISTRY_GHCR_IO_TOKN": "x"})
