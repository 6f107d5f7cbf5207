"""Token secrets (format, digest), personal/resource/deploy tokens, scopes, rotation."""
