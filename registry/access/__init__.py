"""Access: API tokens, created once and stored hashed, and who a token is."""
