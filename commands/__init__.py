"""What a person types or clicks. One module a command, each with register(app, services)."""
