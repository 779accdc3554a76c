"""Marshmallow schemas of the HTTP contract (../shared/API.md), a module per resource: what comes in and goes out."""
