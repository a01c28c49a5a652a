"""Failure alerts: one message per failed task (after its last retry), to a
webhook and by e-mail.

- Webhook: an HTTP POST of a JSON document to the Connection
  `shopflow_alert_webhook` (its host holds the whole URL, or scheme, host,
  port and an `endpoint` extra). Slack-style receivers read `text`.
- E-mail: through the SMTP Connection named by Variable
  `shopflow_alert_smtp_conn` (default `smtp_default`), to the addresses in
  Variable `shopflow_alert_emails` (comma-separated).

A channel that is not configured is skipped with a warning; one that fails
does not stop the other. The message names the DAG, the task, the day(s),
the try and the log URL, and carries the task's own documentation: what it
checks and what to do when it fails.

The notifier builds its message from the context at each call instead of
rendering templates into its own attributes, so one instance serves every
task of the DAG without a message leaking from one failure into the next.
"""

import html
import inspect
import json
import logging

from airflow.sdk import BaseNotifier, Variable

from shopflow_lib.settings import WEBHOOK_CONN

log = logging.getLogger(__name__)


def alert_fields(context):
    """The facts of a failure, as a flat dict (the webhook's JSON document)."""
    ti, dag_run = context["ti"], context.get("dag_run")
    params = context.get("params") or {}
    first = params.get("from_date") or context.get("ds")
    last = params.get("to_date") or context.get("ds")
    task = context.get("task")
    doc = inspect.cleandoc(getattr(task, "doc_md", None) or "")
    run_type = getattr(dag_run, "run_type", "") or ""
    error = context.get("exception")
    return {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "run_id": ti.run_id,
        "run_type": getattr(run_type, "value", str(run_type)),
        "ds": context.get("ds"),
        "logical_date": str(context.get("logical_date")),
        "days": first if first == last else f"{first}..{last}",
        "try_number": ti.try_number,
        "log_url": ti.log_url,
        "error": str(error)[:4000] if error else "",
        "what_to_do": doc,
    }


def alert_text(f):
    """The plain-text form (webhook `text`, e-mail body)."""
    return "\n".join([
        f"shopflow: task {f['task_id']} of DAG {f['dag_id']} failed for {f['days']}",
        f"run {f['run_id']} ({f['run_type']}), try {f['try_number']}",
        f"log: {f['log_url']}",
        "",
        f"error: {f['error'] or '(none recorded)'}",
        "",
        f['what_to_do'],
    ])


class ShopflowFailureAlert(BaseNotifier):
    """on_failure_callback of every shopflow task: webhook and e-mail."""

    def notify(self, context):
        fields = alert_fields(context)
        text = alert_text(fields)
        sent, errors = [], []
        for name, send in (("webhook", self._webhook), ("e-mail", self._email)):
            try:
                if send(fields, text):
                    sent.append(name)
            except Exception as e:  # one channel down must not silence the other
                errors.append(f"{name}: {e}")
                log.error("shopflow alert by %s failed: %s", name, e)
        log.info("shopflow alert for %s.%s sent by %s", fields["dag_id"], fields["task_id"],
                 ", ".join(sent) or "no channel")
        if errors and not sent:
            raise RuntimeError("no alert channel worked: " + "; ".join(errors))

    @staticmethod
    def _webhook(fields, text):
        from airflow.providers.http.hooks.http import HttpHook

        try:
            from airflow.sdk import Connection

            conn = Connection.get(WEBHOOK_CONN)
        except Exception:
            log.warning("no Connection %s: webhook alert skipped (docs/airflow.md)", WEBHOOK_CONN)
            return False
        hook = HttpHook(method="POST", http_conn_id=WEBHOOK_CONN)
        hook.run(endpoint=conn.extra_dejson.get("endpoint"), data=json.dumps({**fields, "text": text}),
                 headers={"Content-Type": "application/json"}, extra_options={"timeout": 30})
        return True

    @staticmethod
    def _email(fields, text):
        from airflow.providers.smtp.hooks.smtp import SmtpHook

        to = [a.strip() for a in (Variable.get("shopflow_alert_emails", default="") or "").split(",")
              if a.strip()]
        if not to:
            log.warning("Variable shopflow_alert_emails is empty: e-mail alert skipped")
            return False
        conn_id = Variable.get("shopflow_alert_smtp_conn", default="smtp_default")
        subject = f"[shopflow] {fields['dag_id']}.{fields['task_id']} failed for {fields['days']}"
        body = f"<pre>{html.escape(text)}</pre>"
        with SmtpHook(smtp_conn_id=conn_id) as smtp:
            smtp.send_email_smtp(to=to, subject=subject, html_content=body,
                                 from_email=smtp.from_email or "shopflow-airflow@localhost")
        return True
