"""The admin REST API (`/api/v1/admin/`), for Netia staff."""
