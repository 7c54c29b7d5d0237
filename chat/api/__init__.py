"""The chat app's HTTP API: the public chat endpoint and the tenant's (customer) REST API."""
