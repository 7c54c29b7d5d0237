"""A bare Django project: the baselines the HTTP benchmarks compare Netia's endpoints with (same gunicorn)."""
