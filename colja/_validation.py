"""Checks of user input at the public boundary."""

from __future__ import annotations

from typing import Any, Sequence


def check_texts(texts: Any, *, what: str = "texts") -> list[str]:
    """Return ``texts`` as a list of str, or raise ``TypeError`` naming the bad item.

    A single string is refused on purpose: iterating it would encode one
    character per "text", which is never what the caller meant.
    """
    if texts is None:
        raise TypeError(f"{what} must be a list of strings, got None")
    if isinstance(texts, (str, bytes)):
        raise TypeError(
            f"{what} must be a list of strings, got a single {type(texts).__name__}; "
            f"wrap it in a list: [{texts[:20]!r}]"
        )
    if not isinstance(texts, Sequence):
        try:
            texts = list(texts)
        except TypeError:
            raise TypeError(f"{what} must be a list of strings, got {type(texts).__name__}") from None
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"{what}[{i}] must be a str, got {type(t).__name__} ({t!r:.60})")
    return out
