"""Element ids of the UI, in one place (the JavaScript and style.css use them too)."""

PREFIX = "depth2img"


def element_id(tab: str, name: str) -> str:
    """`depth2img_<tab>_<name>`, unique per tab (txt2img / img2img)."""
    return f"{PREFIX}_{tab}_{name}"
