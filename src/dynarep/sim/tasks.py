"""The 50 MetaWorld v3 tasks: names, DP3's difficulty split and a language instruction for each.

The instructions are ours (MetaWorld ships none); they describe the goal the scripted expert
reaches, in the imperative, so that language-conditioned methods (DynaFLIP, 3DVLA) have a text.
"""

from __future__ import annotations

import difflib

from dynarep.errors import ConfigError

# DP3's split (Seo et al., "Masked World Models"), see shared/methods/dp3.md section 0.5.
DIFFICULTY: dict[str, str] = {
    **dict.fromkeys(
        [
            "button-press", "button-press-topdown", "button-press-topdown-wall", "button-press-wall",
            "coffee-button", "dial-turn", "door-close", "door-lock", "door-open", "door-unlock",
            "drawer-close", "drawer-open", "faucet-close", "faucet-open", "handle-press", "handle-pull",
            "handle-press-side", "handle-pull-side", "lever-pull", "plate-slide", "plate-slide-back",
            "plate-slide-back-side", "plate-slide-side", "reach", "reach-wall", "window-close",
            "window-open", "peg-unplug-side",
        ],
        "easy",
    ),
    **dict.fromkeys(
        [
            "basketball", "bin-picking", "box-close", "coffee-pull", "coffee-push", "hammer",
            "peg-insert-side", "push-wall", "soccer", "sweep", "sweep-into",
        ],
        "medium",
    ),
    **dict.fromkeys(
        ["assembly", "hand-insert", "pick-out-of-hole", "pick-place", "push", "push-back"], "hard"
    ),
    **dict.fromkeys(
        ["shelf-place", "disassemble", "stick-pull", "stick-push", "pick-place-wall"], "very_hard"
    ),
}

INSTRUCTIONS: dict[str, str] = {
    "assembly": "pick up the nut and place it onto the peg",
    "basketball": "pick up the basketball and dunk it into the hoop",
    "bin-picking": "pick up the puck from one bin and place it into the other bin",
    "box-close": "pick up the lid and close the box with it",
    "button-press": "press the button from the front",
    "button-press-topdown": "press the button from the top",
    "button-press-topdown-wall": "press the button from the top behind the wall",
    "button-press-wall": "press the button from the front behind the wall",
    "coffee-button": "push the button on the coffee machine",
    "coffee-pull": "pull the mug away from the coffee machine",
    "coffee-push": "push the mug under the coffee machine",
    "dial-turn": "rotate the dial 180 degrees",
    "disassemble": "pick the nut off the peg",
    "door-close": "close the door",
    "door-lock": "lock the door by turning the lock down",
    "door-open": "open the door by its handle",
    "door-unlock": "unlock the door by turning the lock up",
    "drawer-close": "push the drawer closed",
    "drawer-open": "open the drawer",
    "faucet-close": "rotate the faucet handle to close it",
    "faucet-open": "rotate the faucet handle to open it",
    "hammer": "hammer the nail into the wall",
    "hand-insert": "insert the gripper into the hole",
    "handle-press": "press the handle down",
    "handle-press-side": "press the handle down from the side",
    "handle-pull": "pull the handle up",
    "handle-pull-side": "pull the handle up from the side",
    "lever-pull": "pull the lever up",
    "peg-insert-side": "insert the peg into the hole from the side",
    "peg-unplug-side": "unplug the peg from the side",
    "pick-out-of-hole": "pick the peg out of the hole",
    "pick-place": "pick up the puck and place it at the goal",
    "pick-place-wall": "pick up the puck and place it at the goal behind the wall",
    "plate-slide": "slide the plate into the cabinet",
    "plate-slide-back": "slide the plate back out of the cabinet",
    "plate-slide-back-side": "slide the plate back out of the cabinet from the side",
    "plate-slide-side": "slide the plate into the cabinet from the side",
    "push": "push the puck to the goal",
    "push-back": "pull the puck back to the goal",
    "push-wall": "push the puck around the wall to the goal",
    "reach": "reach the goal position",
    "reach-wall": "reach the goal position over the wall",
    "shelf-place": "pick up the puck and place it onto the shelf",
    "soccer": "kick the ball into the goal",
    "stick-pull": "grasp the stick and pull the box with it",
    "stick-push": "grasp the stick and push the box with it",
    "sweep": "sweep the puck off the table",
    "sweep-into": "sweep the puck into the hole",
    "window-close": "push the window closed",
    "window-open": "push the window open",
}

TASKS: tuple[str, ...] = tuple(sorted(INSTRUCTIONS))
DEVELOPMENT_SET: tuple[str, ...] = (
    "button-press", "drawer-open", "door-open", "coffee-push", "hammer", "pick-place", "assembly",
    "stick-pull",
)


def canonical_task(name: str) -> str:
    """Accept 'drawer-open', 'drawer-open-v3' or 'drawer_open'; reject anything else by name."""
    key = name.strip().lower().replace("_", "-")
    key = key.removesuffix("-v3").removesuffix("-v2")
    if key not in INSTRUCTIONS:
        close = difflib.get_close_matches(key, TASKS, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run 'dynarep collect --help' for the list"
        raise ConfigError(f"unknown MetaWorld task '{name}'{hint}")
    return key


def expand_tasks(names: list[str] | tuple[str, ...]) -> list[str]:
    """'all' means the 50 tasks, 'dev' the development set; duplicates are dropped, order is kept."""
    out: list[str] = []
    for name in names:
        for part in name.split(","):
            part = part.strip()
            if not part:
                continue
            group = {"all": TASKS, "dev": DEVELOPMENT_SET}.get(part.lower())
            for task in group or (canonical_task(part),):
                if task not in out:
                    out.append(task)
    if not out:
        raise ConfigError("no task given: pass --task NAME (or 'all', or 'dev')")
    return out
