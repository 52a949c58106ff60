"""What runs: intake and its spool, the job lanes and their handlers, the outbox, webhooks,
OCR, metrics, health and the supervision of child processes."""
