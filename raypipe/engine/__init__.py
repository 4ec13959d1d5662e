"""Running a plan: the task, the executors (the driver's threads, Ray's workers), the muxer, progress, the report."""
