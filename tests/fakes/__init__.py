"""Real local HTTP servers that stand in for the outside world (OpenAI, Papercups, Stripe, SMTP) in tests."""
