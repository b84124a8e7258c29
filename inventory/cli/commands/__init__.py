"""Groups of CLI commands; each module's ``register`` adds its commands to the application."""
