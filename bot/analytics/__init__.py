"""Analytics for the dashboard: per-day series (series.py, report.py), their plots as inline
SVG (plots.py) and the topics people write about (topic_model.py, topics_job.py).

The core speaks plain dataclasses here too: storage reads rows (bot/storage/analytics_queries.py,
bot/storage/topics.py), this package turns them into series and pictures, and the web room only
renders what it gets.
"""
