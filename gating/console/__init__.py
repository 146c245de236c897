"""What people and tools read: API tokens, the JSON API, the pages, dossiers and exports."""
