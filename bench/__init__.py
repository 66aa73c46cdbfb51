"""dynarep benchmarks: `python -m bench` runs the suite; the modules run on their own too."""
