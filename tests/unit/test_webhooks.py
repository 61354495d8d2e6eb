"""Webhook rules without I/O: Standard Webhooks signatures, the CloudEvent body, which targets
may be called, what an answer means and the retry schedule."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from fieldsync import errors
from fieldsync.domain import webhooks as rules


def test_signature_matches_the_standard_webhooks_known_answer() -> None:
    signature = rules.sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        message_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_fresh_secret_signs_what_the_standardwebhooks_package_verifies() -> None:
    secret = rules.new_secret()
    assert secret.startswith("whsec_") and len(rules.signing_key(secret)) == 32
    assert rules.new_secret() != secret
    body = rules.cloud_event(
        event_id=uuid.uuid4(), event_type="report.created", report_id=uuid.uuid4(),
        occurred_at=dt.datetime.now(dt.UTC), data={"title": "沁河水位上涨"},
    )
    now = int(dt.datetime.now(dt.UTC).timestamp())
    headers = rules.headers(secret, message_id="m-1", timestamp=now, body=body)
    assert Webhook(secret).verify(body, headers)["data"] == {"title": "沁河水位上涨"}


def test_cloud_event_body_has_the_required_attributes_and_the_report_as_subject() -> None:
    event_id, report_id = uuid.uuid4(), uuid.uuid4()
    when = dt.datetime(2026, 6, 1, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    body = json.loads(rules.cloud_event(event_id=event_id, event_type="hazard.overdue", report_id=report_id,
                                        occurred_at=when, data={"a": 1}))
    assert body == {
        "specversion": "1.0", "id": str(event_id), "source": "/v1/reports", "type": "hazard.overdue",
        "time": "2026-06-01T07:30:00Z", "subject": str(report_id), "datacontenttype": "application/json",
        "data": {"a": 1},
    }


def test_merge_survivor_outside_the_subscription_subtree_is_not_named() -> None:
    data = {"into": "abc", "_into_path": "/140000/140400/140403/", "title": "t"}
    assert rules.visible_data(data, "/140000/140400/140431/") == {"into": None, "title": "t"}
    assert rules.visible_data(data, "/140000/140400/") == {"into": "abc", "title": "t"}
    assert rules.visible_data(data, None) == {"into": "abc", "title": "t"}


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
     "fe80::1", "fc00::1", "::ffff:127.0.0.1", "224.0.0.1", "255.255.255.255", "not-an-address"],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert not rules.address_allowed(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert rules.address_allowed(address)


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/", "https://", "https://user:pw@example.com/", "https://example.com/#frag",
     "https://exa mple.com/", "https://example.com:99999/", "https://[::1/", "https://bad_host!.com/",
     "https://" + "a" * 64 + ".com/", "https://example.com/" + "x" * 2048],
)
def test_malformed_urls_are_invalid(url: str) -> None:
    with pytest.raises(errors.WebhookUrlInvalid):
        rules.parse_target(url)


def test_target_keeps_the_path_and_query_and_names_the_host_header() -> None:
    target = rules.parse_target("https://Command.Example.gov.cn:8443/hooks/in?k=1")
    assert (target.scheme, target.host, target.port, target.path) == ("https", "command.example.gov.cn", 8443,
                                                                      "/hooks/in?k=1")
    assert target.host_header == "command.example.gov.cn:8443"
    assert rules.parse_target("http://[2606:4700::1]/").host_header == "[2606:4700::1]"
    idn = rules.parse_target("https://指挥中心.中国/").host
    assert idn.isascii() and idn.startswith("xn--") and idn.encode().decode("idna") == "指挥中心.中国"


def test_localhost_names_count_as_this_machine() -> None:
    assert rules.name_is_local("localhost") and rules.name_is_local("api.localhost")
    assert not rules.name_is_local("localhost.example.com")


@pytest.mark.parametrize(("status", "verdict"), [(200, "delivered"), (204, "delivered"), (301, "retry"),
                                                 (410, "gone"), (429, "retry"), (500, "retry"), (503, "retry")])
def test_answers_are_classified_as_standard_webhooks_says(status: int, verdict: str) -> None:
    assert rules.verdict(status) == verdict


def test_retry_after_reads_seconds_and_http_dates_and_is_capped() -> None:
    now = dt.datetime(2026, 6, 1, 8, 0, tzinfo=dt.UTC)
    assert rules.parse_retry_after("120", now=now) == 120
    assert rules.parse_retry_after("Mon, 01 Jun 2026 08:05:00 GMT", now=now) == 300
    assert rules.parse_retry_after("9999999", now=now) == 24 * 3600
    assert rules.parse_retry_after("soon", now=now) is None
    assert rules.parse_retry_after(None, now=now) is None


def test_default_schedule_retries_within_a_minute_grows_and_lasts_over_a_day() -> None:
    policy = rules.RetryPolicy()
    rng = random.Random(1)
    waits = [policy.next_delay(n, rng=rng) for n in range(1, policy.max_attempts)]
    assert all(w is not None for w in waits)
    assert waits[0] is not None and waits[0] <= 60
    assert all(a is not None and b is not None and a < b for a, b in zip(waits, waits[1:-1], strict=False))
    assert sum(policy.delays_s) >= 24 * 3600, "even without jitter the last attempt comes after 24 h"
    assert policy.next_delay(policy.max_attempts, rng=rng) is None


def test_jitter_only_lengthens_a_wait_and_retry_after_wins_when_longer() -> None:
    policy = rules.RetryPolicy(delays_s=(10.0, 20.0), jitter=0.5)
    rng = random.Random(7)
    waits = {policy.next_delay(1, rng=rng) for _ in range(50)}
    assert all(w is not None and 10.0 <= w <= 15.0 for w in waits) and len(waits) > 1
    assert policy.next_delay(1, retry_after_s=120, rng=rng) == 120
