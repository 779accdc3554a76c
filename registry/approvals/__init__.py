"""Approval requests on protected aliases: open, approve, reject; the last approval moves the alias through promote."""
