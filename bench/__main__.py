"""`python -m bench`: the benchmark suite (see bench/suite.py)."""

from bench.suite import main

if __name__ == "__main__":
    main()
