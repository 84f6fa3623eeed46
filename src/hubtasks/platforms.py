"""Platform names (`os/arch[/variant]`) as images carry them. Pure.

One platform has one name: `normalize_platform` gives the name containerd's `platforms` package
(and so BuildKit, the daemon and an index's entries) uses — `x86_64` is `amd64`, `aarch64` and
`arm64/v8` are `arm64`, `armhf` is `arm/v7`, a bare `arm` is `arm/v7`, `i386` is `386`,
`macos` is `darwin`. A build then gets `TARGETARCH=amd64` for `linux/x86_64`, as BuildKit would
give it, and two spellings of one platform are seen to be one.
"""

# arch → (the name, variants that mean no variant, variants renamed)
_ARCHES: dict[str, tuple[str, frozenset[str], dict[str, str]]] = {
    "amd64": ("amd64", frozenset({"v1"}), {}),
    "arm64": ("arm64", frozenset({"8", "v8", "v8.0"}), {"9": "v9", "9.0": "v9", "v9.0": "v9"}),
}
_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}


def normalize_platform(platform: str) -> str:
    """`os/arch[/variant]` as containerd names it (lower case)."""
    os_name, arch, *rest = platform.strip().lower().split("/")
    variant = rest[0] if rest else ""
    os_name = "darwin" if os_name == "macos" else os_name
    arch = _ALIASES.get(arch, arch)
    if arch in _ARCHES:
        arch, plain, renamed = _ARCHES[arch]
        variant = "" if variant in plain else renamed.get(variant, variant)
    elif arch == "i386":
        arch, variant = "386", ""
    elif arch in ("armhf", "armel"):
        arch, variant = "arm", "v7" if arch == "armhf" else "v6"
    elif arch == "arm":
        variant = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(variant, variant)
    return "/".join(part for part in (os_name, arch, variant) if part)


def same_platform(wanted: str, found: str) -> bool:
    """Whether an image of `found` (a config's os/arch[/variant]) is one of `wanted`, both
    normalised (a config's `linux/arm` is `linux/arm/v7`): the variant counts only when it was
    asked for (`linux/arm64` takes `linux/arm64/v9`)."""
    if "/" not in wanted or "/" not in found:
        return False
    asked, got = normalize_platform(wanted).split("/"), normalize_platform(found).split("/")
    return asked[:2] == got[:2] and (len(asked) < 3 or asked[2:] == got[2:])
