"""Rollouts on autopilot: plans of steps and gates, the statistics that judge them, and the controller that walks them."""
