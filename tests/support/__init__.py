"""What the functional and browser tests share: live servers, processes, the token-hygiene check."""
