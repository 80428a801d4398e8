"""Looking inside runs and data: layer probing, run reports, data checks, active learning."""
