"""The outbox: idempotent queueing, exclusive claims, backoff, a bound, never a message twice."""

import threading

import psycopg

from backup_pipeline.notifications import outbox, service
from backup_pipeline.notifications.mailer import SmtpConfig
from backup_pipeline_tests.notifications.conftest import SENDER, free_port


def smtp_config(port: int) -> SmtpConfig:
    return SmtpConfig(host="127.0.0.1", port=port, security="none", sender=SENDER, timeout=10)


def queue(url: str, n: int, run_id: str = "run-1") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for i in range(n):
            outbox.enqueue(conn, run_id=run_id, kind="backup_failure",
                           recipient=f"user{i}@example.com", subject=f"subject {i}",
                           body=f"body {i}\n")


def states(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT state, attempts FROM backup.email_outbox ORDER BY id").fetchall()


def test_enqueue_is_idempotent_per_run_kind_and_recipient(catalog_url):
    with psycopg.connect(catalog_url, autocommit=True) as conn:
        args = {"run_id": "r", "kind": "backup_success", "subject": "s", "body": "b"}
        assert outbox.enqueue(conn, recipient="Ops@Example.com", **args)
        assert not outbox.enqueue(conn, recipient="ops@example.com", **args)
        assert outbox.enqueue(conn, recipient="other@example.com", **args)
        assert outbox.enqueue(conn, **{**args, "kind": "backup_failure"},
                              recipient="ops@example.com")
    assert len(states(catalog_url)) == 3


def test_claims_are_exclusive_until_the_lease_ends(catalog_url):
    queue(catalog_url, 3)
    policy = outbox.Policy()
    with psycopg.connect(catalog_url, autocommit=True) as a, \
            psycopg.connect(catalog_url, autocommit=True) as b:
        first = outbox.claim(a, policy, limit=2)
        second = outbox.claim(b, policy, limit=5)
        assert len(first) == 2 and len(second) == 1
        assert not {m.id for m in first} & {m.id for m in second}
        assert outbox.claim(a, policy) == []
        # the first sender dies before sending: once its lease ends the messages are free again
        a.execute("UPDATE backup.email_outbox SET claimed_until = now() - interval '1 second'"
                  " WHERE id = ANY(%s)", ([m.id for m in first],))
        assert not outbox.mark_sending(a, first[0])  # its lease is gone: it must not send
        again = outbox.claim(b, policy)
        assert sorted(m.id for m in again) == sorted(m.id for m in first)


def test_backoff_doubles_up_to_a_cap():
    policy = outbox.Policy(first_retry_seconds=60, max_retry_seconds=3600)
    assert [policy.delay(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    # the default bound gives up after about a day of retries
    default = outbox.Policy()
    total = sum(default.delay(n) for n in range(1, default.max_attempts))
    assert 20 * 3600 < total < 30 * 3600


def test_gives_up_after_the_bound_and_sends_nothing_later(catalog_url, smtp_server):
    queue(catalog_url, 1)
    policy = outbox.Policy(first_retry_seconds=0, max_attempts=2)
    down = smtp_config(free_port())
    first = service.deliver(catalog_url, down, policy)
    second = service.deliver(catalog_url, down, policy)
    assert (first.retrying, second.failed) == (1, 1)
    assert states(catalog_url) == [("failed", 2)]
    assert "Connection refused" in second.errors[0]
    assert service.deliver(catalog_url, smtp_config(smtp_server.port), policy).sent == 0
    assert smtp_server.received == []


def test_a_message_refused_for_good_is_not_retried(catalog_url, smtp_server):
    queue(catalog_url, 2)
    smtp_server.recorder.refuse.add("user0@example.com")
    report = service.deliver(catalog_url, smtp_config(smtp_server.port), outbox.Policy())
    assert (report.sent, report.failed) == (1, 1)
    assert "550" in report.errors[0] and "refused the recipient" in report.errors[0]
    assert states(catalog_url) == [("failed", 1), ("sent", 1)]
    assert [m.rcpt_tos for m in smtp_server.received] == [["user1@example.com"]]


def test_a_message_whose_sender_died_mid_delivery_is_not_resent(catalog_url, smtp_server):
    """The sender got as far as handing the message over, then died: it may have arrived, so
    it is given up (reported), never sent a second time."""
    queue(catalog_url, 1)
    policy = outbox.Policy()
    with psycopg.connect(catalog_url, autocommit=True) as conn:
        [message] = outbox.claim(conn, policy)
        assert outbox.mark_sending(conn, message)
        conn.execute("UPDATE backup.email_outbox SET claimed_until = now() - interval '1 second'")
    report = service.deliver(catalog_url, smtp_config(smtp_server.port), policy)
    assert (report.sent, report.expired) == (0, 1)
    with psycopg.connect(catalog_url) as conn:
        state, error = conn.execute("SELECT state, last_error FROM backup.email_outbox").fetchone()
    assert state == "failed" and "not resent" in error
    assert smtp_server.received == []


def test_concurrent_senders_send_each_message_once(catalog_url, smtp_server):
    queue(catalog_url, 12)
    config = smtp_config(smtp_server.port)
    errors: list[BaseException] = []

    def sender():
        try:
            for _ in range(3):
                service.deliver(catalog_url, config, outbox.Policy(), limit=2)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    mailed = sorted(r for m in smtp_server.received for r in m.rcpt_tos)
    assert mailed == sorted(f"user{i}@example.com" for i in range(12))
    assert {s for s, _ in states(catalog_url)} == {"sent"}


def test_message_id_is_the_same_on_every_attempt(catalog_url, smtp_server):
    """So a receiving system can recognise a duplicate, should one ever be sent."""
    from backup_pipeline.notifications.render import message_id

    queue(catalog_url, 1)
    policy = outbox.Policy(first_retry_seconds=0)
    down = service.deliver(catalog_url, smtp_config(free_port()), policy)
    assert (down.waiting, down.retrying) == (1, 1)
    assert "Connection refused" in down.describe()
    service.deliver(catalog_url, smtp_config(smtp_server.port), policy)
    [mail] = smtp_server.received
    key = outbox.dedupe_key("run-1", "backup_failure", "user0@example.com")
    assert mail.message["Message-ID"] == message_id(key, SENDER)
    assert mail.message["Message-ID"].endswith("@example.com>")
