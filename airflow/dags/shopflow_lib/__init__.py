"""Helpers of the shopflow DAGs (not DAG files: see ../.airflowignore)."""
