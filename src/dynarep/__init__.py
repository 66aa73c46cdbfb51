"""dynarep: dynamics-aware 3D visual representations for robot manipulation."""

__version__ = "0.1.0"

import os as _os

# Headless rendering on a CPU: EGL (Mesa llvmpipe). MuJoCo reads this once, when first imported.
_os.environ.setdefault("MUJOCO_GL", "egl")
