"""dynarep: dynamics-aware 3D visual representations for robot manipulation."""

__version__ = "0.1.0"
