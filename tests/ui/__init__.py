"""Browser tests: the real Airflow UI in headless Chromium (see test_trigger_form.py)."""
