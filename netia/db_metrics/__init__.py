"""django-prometheus' PostgreSQL backend with cheaper per-statement metrics (ORIGINAL_BACKEND under django-tenants')."""
