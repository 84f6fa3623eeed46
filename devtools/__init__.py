"""Development helpers: a throwaway Docker daemon and registry for tests, demo and benchmarks."""
