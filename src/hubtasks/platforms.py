"""Platform names (`os/arch[/variant]`) as images carry them. Pure."""


def same_platform(wanted: str, found: str) -> bool:
    """Whether an image of `found` (a config's os/arch[/variant]) is one of `wanted`: the
    variant counts only when it was asked for (`linux/arm64` takes `linux/arm64/v8`)."""
    asked, got = wanted.split("/"), found.split("/")
    return asked[:2] == got[:2] and (len(asked) < 3 or asked[2:] == got[2:])
