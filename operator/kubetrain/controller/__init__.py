"""The operator's kopf wiring: fetch inputs, call the pure planner, apply, write status."""
