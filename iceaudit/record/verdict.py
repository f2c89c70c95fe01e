"""Plain-language sentences composed from the record."""
from __future__ import annotations

from typing import Sequence

from iceaudit.record.audit import Driver


def agreement_word(rho: float | None) -> str:
    """Plain reading of a rank correlation between two rankings of subspaces."""
    if rho is None:
        return "cannot be compared"
    if rho >= 0.7:
        return "agree"
    if rho >= 0.3:
        return "partly agree"
    if rho > -0.3:
        return "do not agree"
    return "rank them in opposite order"


def _fmt_list(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def compose_verdict(drivers: Sequence[Driver], protected: set[str] | None = None,
                    units: dict[str, str] | None = None) -> str:
    """One plain-language paragraph from ranked driver records.

    Args:
        drivers: ranked, strongest first.
        protected: subspace ids of protected attributes (default: drivers tagged ``protected``).
        units: subspace id -> what one unit means (the bank's ``unit``), named for the top driver.
    """
    def is_protected(d: Driver) -> bool:
        return d.subspace in protected if protected is not None else d.protected

    sig = [d for d in drivers if d.significant]
    prot_sig = [d for d in sig if is_protected(d)]
    prot_quiet = [d for d in drivers if is_protected(d) and not d.significant]
    if not sig:
        text = (
            f"None of the {len(drivers)} tested subspaces measurably moves the classifier's decision: "
            "no semantic driver was found."
        )
    else:
        top = sig[0]
        second = sig[1] if len(sig) > 1 else None
        how = "mostly" if second is None or abs(top.slope) >= 2 * abs(second.slope) else "most strongly"
        label = f"{top.name}" + (", a protected attribute" if is_protected(top) else "")
        unit = (units or {}).get(top.subspace)
        if top.mixed_sign and top.extra is not None and top.extra.mean_abs_slope is not None:
            moves = (f" moves the score by {top.extra.mean_abs_slope:.3f} per face on average, up for "
                     f"{100 * (top.extra.up_share or 0):.0f}% of faces and down for "
                     f"{100 * (top.extra.down_share or 0):.0f}% (a sign that differs across faces),")
        else:
            moves = f" moves the score by {top.slope:+.3f}"
        text = (
            f"The classifier's decision is driven {how} by {label}: one unit of change"
            + (f" ({unit})" if unit else "")
            + moves + f" and flips the decision for {100 * top.flip_rate:.0f}% of faces."
        )
        also = [f"{d.name}" for d in sig[1:] if not is_protected(d)]
        prot_also = [f"{d.name}" for d in prot_sig if d is not top]
        parts = []
        if prot_also:
            parts.append(f"{_fmt_list(prot_also)}, " + ("a protected attribute" if len(prot_also) == 1 else "protected attributes"))
        if also:
            parts.append(_fmt_list(also))
        if parts:
            text += " It is also significantly sensitive to " + ", and to ".join(parts) + "."
    specific = [d for d in sig if d.beyond_random]
    measured = [d for d in sig if d.beyond_random is not None]
    if measured and not specific:
        text += (" None of these effects is larger than that of random edits of the same visual size: the "
                 "classifier reacts to image change in general rather than to these attributes specifically "
                 "(low specificity).")
    elif measured and len(specific) < len(sig):
        text += (f" Of these, only {_fmt_list([f'{d.name}' for d in specific])} "
                 + ("exceeds" if len(specific) == 1 else "exceed") + " random edits of the same visual size.")
    if prot_quiet:
        text += f" No significant effect of {_fmt_list([f'{d.name}' for d in prot_quiet])} (protected)."
    return text
