"""Rollouts on an alias: their state and history, request routing, shadow runs and summed figures."""
