"""`btq dashboard`: a small web app over the Redis layout (jobs, a job's live timeline, workers).

It reads only the keys documented in README.md ("Redis layout") and never imports worker code.
"""
