"""Platform names normalised as containerd's `platforms` package normalises them (what
BuildKit and the daemon call a platform), so that one platform has one name."""

from __future__ import annotations

import pytest

from hubtasks.platforms import normalize_platform, same_platform


@pytest.mark.parametrize(
    "given, normal",
    [
        ("linux/amd64", "linux/amd64"),
        ("linux/x86_64", "linux/amd64"),
        ("linux/x86-64", "linux/amd64"),
        ("linux/amd64/v1", "linux/amd64"),
        ("linux/amd64/v3", "linux/amd64/v3"),
        ("linux/aarch64", "linux/arm64"),
        ("linux/arm64/v8", "linux/arm64"),
        ("linux/arm64/8", "linux/arm64"),
        ("linux/aarch64/v8.0", "linux/arm64"),
        ("linux/arm64/v9.0", "linux/arm64/v9"),
        ("linux/armhf", "linux/arm/v7"),
        ("linux/armel", "linux/arm/v6"),
        ("linux/arm", "linux/arm/v7"),
        ("linux/arm/7", "linux/arm/v7"),
        ("linux/arm/6", "linux/arm/v6"),
        ("linux/arm/v5", "linux/arm/v5"),
        ("linux/i386", "linux/386"),
        ("macos/arm64", "darwin/arm64"),
        ("LINUX/X86_64", "linux/amd64"),
        ("linux/s390x", "linux/s390x"),
        ("linux/riscv64", "linux/riscv64"),
    ],
)
def test_normalize_platform(given, normal):
    assert normalize_platform(given) == normal


def test_same_platform_still_takes_a_variant_only_when_asked():
    assert same_platform("linux/arm64", "linux/arm64/v8")
    assert not same_platform("linux/arm/v7", "linux/arm/v6")
    assert same_platform("linux/arm/v7", "linux/arm")  # a config without a variant: v7
    assert same_platform("linux/amd64", "linux/x86_64")
    assert not same_platform("linux/amd64", "") and not same_platform("linux/amd64", "linux")
