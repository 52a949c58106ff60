"""The city's rules: routing, the workflow and its deadlines, who sees what, statistics and
reports. No I/O beyond the session it is handed; below the engine, channels and front ends."""
