"""From a job to exact global frame ranges: the timeline, every validation, the cost model and the
threads-or-Ray rule."""
