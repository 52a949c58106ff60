"""The operator and department console: server-rendered pages under /console."""
