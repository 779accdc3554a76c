"""The registry as declared state: a file (registry.yaml, of registry.schema.json) read and checked
(files), the live registry in its shape (live), what apply would change (changes) and applying it (apply)."""
