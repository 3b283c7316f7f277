"""privinfer model zoo."""
