"""The plugin's own Alembic revisions: a branch of their own beside Amur's."""
