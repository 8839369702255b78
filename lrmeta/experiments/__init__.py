"""Config-driven experiments: configs, jobs, results folders."""
