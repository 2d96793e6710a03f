"""Pure verdicts of the spec policies, one module (or package) per policy: `residency` (where a
job's data may be read from), `budget` (GPU-hours a namespace may spend), `promotion` (the gates a
finished run must pass); `admission` combines them for the webhooks. No I/O: the controller fetches
the facts, the planner and the webhooks apply the verdicts."""
