"""Submissions: the archive check, the state machine, idempotent scoring, limits, watchdog.

The pipeline runs in-process with the real scoring library and the test weights, on a
two-image 64x64 input set; nothing is mocked.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from accounts.models import ApiToken
from django.apps import apps
from django.core import mail
from django.db import connection, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from submissions import pipeline, transitions, watchdog
from submissions.models import DatasetScore, ImageScore, Submission, SubmissionEvent, SubmissionResult
from submissions.services import SubmissionRefused, cancel_submission, quota_status
from tests.platform.conftest import INPUT_LAYOUT, score_report, upload_file
from tests.support.archives import png_bytes

State = Submission.State
CELEBA, WIDER = (f"{dataset}/{stem}.png" for dataset, stem in INPUT_LAYOUT.items())


def database_snapshot() -> dict[str, list[dict]]:
    """Every row of every model, as plain values, in primary key order."""
    return {
        model._meta.label: list(model.objects.order_by("pk").values())
        for model in apps.get_models()
    }


def events_of(submission: Submission) -> list[tuple[str, str]]:
    return list(SubmissionEvent.objects.filter(submission=submission).values_list("state", "message"))


def force_state(submission: Submission, state: str, **fields) -> None:
    """Test setup only: put a submission in a state without going through the state machine."""
    Submission.objects.filter(pk=submission.pk).update(state=state, **fields)


# --------------------------------------------------------------------------- rejected archive


def test_rejected_archive_names_every_problem_and_changes_nothing_else(
    client, loaded_phase, make_team, make_archive, submit, storage, django_capture_on_commit_callbacks,
):
    alpha = make_team("Alpha", members=["alpha2"])
    beta = make_team("Beta")
    other = submit(beta)  # another team's submission, which must stay as it is
    bad = make_archive(skip={CELEBA}, extra={"notes.txt": b"made with love"}, replace={WIDER: png_bytes((32, 32))})

    client.force_login(alpha.created_by)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(reverse("submission-upload", args=["ntire", "dev"]),
                               {"archive": upload_file(bad), "description": "broken"})
    assert len(callbacks) == 1  # the enqueue, sent only once the upload is committed
    submission = Submission.objects.get(team=alpha)
    assert response.status_code == 302 and response.url == reverse("submission-detail", args=[submission.pk])
    assert submission.state == State.SUBMITTED

    before = database_snapshot()
    assert pipeline.run_submission(submission.pk) == State.REJECTED
    after = database_snapshot()

    submission.refresh_from_db()
    assert submission.state == State.REJECTED
    assert submission.attempts == 1 and submission.finished_at is not None
    assert submission.counts_toward_quota is True  # the team's fault: the slot is used
    for expected in (f"[missing] {CELEBA} is missing from the submission.",
                     "[extra] notes.txt is not one of the expected",
                     f"[wrong_size] {WIDER} is 32x32; expected 64x64 like its input."):
        assert expected in submission.error
    assert "3 problem(s)" in submission.error

    # Only this submission's row and its log changed.
    changed_tables = {label for label in before if before[label] != after[label]}
    assert changed_tables == {"submissions.Submission", "submissions.SubmissionEvent"}
    rows_before = {row["id"]: row for row in before["submissions.Submission"]}
    rows_after = {row["id"]: row for row in after["submissions.Submission"]}
    assert rows_before.keys() == rows_after.keys() == {submission.pk, other.pk}
    assert rows_after[other.pk] == rows_before[other.pk]
    changed_fields = {k for k, v in rows_after[submission.pk].items() if rows_before[submission.pk][k] != v}
    assert changed_fields <= {"state", "started_at", "finished_at", "heartbeat_at", "worker", "attempts", "error"}
    assert {"state", "attempts", "error", "finished_at"} <= changed_fields
    old_events = {row["id"] for row in before["submissions.SubmissionEvent"]}
    assert [row for row in before["submissions.SubmissionEvent"]] == [
        row for row in after["submissions.SubmissionEvent"] if row["id"] in old_events]
    new_events = [row for row in after["submissions.SubmissionEvent"] if row["id"] not in old_events]
    assert [(row["submission_id"], row["state"]) for row in new_events] == [
        (submission.pk, State.VALIDATING), (submission.pk, State.REJECTED)]
    rejection = new_events[-1]["message"]
    assert rejection.startswith("Archive rejected.")
    assert CELEBA in rejection and "notes.txt" in rejection and WIDER in rejection

    # Nothing extracted or fetched is left in the worker's scratch space.
    assert not list((storage / "scratch").glob("sub-*"))

    # The team reads the reasons on its page and in status.json.
    page = client.get(reverse("submission-detail", args=[submission.pk])).content.decode()
    assert "Rejected" in page and "notes.txt" in page and "is 32x32; expected 64x64" in page
    status = client.get(reverse("submission-status", args=[submission.pk])).json()
    assert status["state"] == "rejected" and status["final"] is True and "result" not in status
    assert f"[missing] {CELEBA}" in status["error"]


# --------------------------------------------------------------------------- state machine

LEGAL = {
    (State.SUBMITTED, State.VALIDATING),
    (State.VALIDATING, State.SCORING),
    (State.SCORING, State.SCORED),
    (State.VALIDATING, State.REJECTED),
    *((s, State.FAILED) for s in (State.SUBMITTED, State.VALIDATING, State.SCORING)),
    *((s, State.CANCELLED) for s in (State.SUBMITTED, State.VALIDATING, State.SCORING)),
    *((s, State.SUBMITTED) for s in (State.VALIDATING, State.SCORING, State.SCORED, State.FAILED, State.REJECTED)),
}


def test_transitions_allow_exactly_the_legal_moves(make_team, submit):
    submission = submit(make_team("Alpha"))
    for source in State.values:
        for target in State.values:
            force_state(submission, source)
            count = SubmissionEvent.objects.filter(submission=submission).count()
            moved = transitions.transition(submission.pk, target, f"{source} -> {target}")
            state = Submission.objects.get(pk=submission.pk).state
            assert moved is ((source, target) in LEGAL), (source, target)
            assert state == (target if moved else source), (source, target)
            assert SubmissionEvent.objects.filter(submission=submission).count() == count + int(moved)


def test_illegal_moves_are_refused_even_when_asked_for(make_team, submit):
    submission = submit(make_team("Alpha"))
    force_state(submission, State.SCORED)
    assert transitions.transition(submission.pk, State.SCORING, "back to scoring") is False
    assert transitions.transition(submission.pk, State.SCORED, "again") is False
    # ``sources`` can narrow the allowed sources, never widen them.
    assert transitions.transition(submission.pk, State.SCORING, "forced", sources=(State.SCORED,)) is False
    force_state(submission, State.CANCELLED)
    assert transitions.transition(submission.pk, State.SUBMITTED, "re-run a cancelled one") is False
    assert Submission.objects.get(pk=submission.pk).state == State.CANCELLED
    assert not SubmissionEvent.objects.filter(submission=submission).exclude(state=State.SUBMITTED).exists()


def test_one_log_event_per_successful_transition(make_team, submit):
    submission = submit(make_team("Alpha"))
    initial = events_of(submission)
    assert [state for state, _ in initial] == [State.SUBMITTED]  # "Archive received"
    assert "Archive received" in initial[0][1]
    moves = [
        (State.VALIDATING, True), (State.VALIDATING, False), (State.SCORING, True), (State.SCORING, False),
        (State.SCORED, True), (State.SCORED, False), (State.FAILED, False), (State.SUBMITTED, True),
        (State.CANCELLED, True), (State.CANCELLED, False),
    ]
    for target, expected in moves:
        assert transitions.transition(submission.pk, target, f"to {target}") is expected, target
    assert events_of(submission)[1:] == [(target, f"to {target}") for target, ok in moves if ok]


def test_transitions_set_the_timestamps(make_team, submit):
    submission = submit(make_team("Alpha"))
    assert transitions.transition(submission.pk, State.VALIDATING, "go", worker="w1", attempts=F("attempts") + 1)
    submission.refresh_from_db()
    assert submission.started_at and submission.heartbeat_at and submission.finished_at is None
    assert (submission.worker, submission.attempts) == ("w1", 1)
    assert transitions.transition(submission.pk, State.SCORING, "scoring", progress_done=1)
    assert transitions.transition(submission.pk, State.FAILED, "boom")
    submission.refresh_from_db()
    assert submission.finished_at is not None
    assert transitions.heartbeat(submission.pk) is False  # not running any more
    assert transitions.transition(submission.pk, State.SUBMITTED, "again")
    submission.refresh_from_db()
    assert (submission.finished_at, submission.heartbeat_at, submission.worker, submission.progress_done) == (
        None, None, "", 0)
    assert submission.attempts == 1  # a requeue keeps the count


@pytest.mark.django_db(transaction=True)
def test_concurrent_transitions_to_the_same_state_have_one_winner(make_team, submit):
    """Two workers take the same submission at once: the row lock makes the second UPDATE wait,
    re-read the state and match nothing."""
    submission = submit(make_team("Alpha"))
    first_moved = threading.Event()
    outcome: dict[str, object] = {}

    def first_worker():
        try:
            with transaction.atomic():
                outcome["first"] = transitions.transition(submission.pk, State.VALIDATING, "taken by w1",
                                                          sources=(State.SUBMITTED,), worker="w1")
                first_moved.set()
                time.sleep(1.0)  # hold the row lock while the second worker tries
        finally:
            first_moved.set()
            connection.close()

    def second_worker():
        try:
            first_moved.wait(10)
            started = time.monotonic()
            outcome["second"] = transitions.transition(submission.pk, State.VALIDATING, "taken by w2",
                                                       sources=(State.SUBMITTED,), worker="w2")
            outcome["waited"] = time.monotonic() - started
        finally:
            connection.close()

    threads = [threading.Thread(target=first_worker), threading.Thread(target=second_worker)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcome["first"] is True and outcome["second"] is False
    assert outcome["waited"] > 0.1  # the second really ran while the first held the row
    submission.refresh_from_db()
    assert (submission.state, submission.worker) == (State.VALIDATING, "w1")
    assert [e for e in events_of(submission) if e[0] == State.VALIDATING] == [(State.VALIDATING, "taken by w1")]


# --------------------------------------------------------------------------- idempotent scoring


def test_run_submission_twice_scores_once(scoring_settings, make_team, submit):
    team = make_team("Alpha")
    submission = submit(team)

    assert pipeline.run_submission(submission.pk) == State.SCORED
    submission.refresh_from_db()
    result = SubmissionResult.objects.get(submission=submission)
    # The restored images are the inputs: identity similarity of an image with itself.
    assert result.id_similarity == pytest.approx(1.0, abs=1e-4)
    assert (result.failed_count, result.valid, result.official_weights) == (0, True, False)
    assert set(result.metrics) == {"clipiqa", "musiq"}
    assert result.total == pytest.approx(result.metrics["clipiqa"] + result.metrics["musiq"] / 100)
    assert sorted(DatasetScore.objects.filter(result=result).values_list("dataset", flat=True)) == sorted(
        INPUT_LAYOUT)
    assert ImageScore.objects.filter(result=result).count() == len(INPUT_LAYOUT)
    assert (submission.attempts, submission.progress_done, submission.progress_total) == (1, 2, 2)
    assert [s for s, _ in events_of(submission)] == [State.SUBMITTED, State.VALIDATING, State.SCORING, State.SCORED]
    [notice] = mail.outbox
    assert notice.to == [team.created_by.email] and f"Submission {submission.pk} is scored" in notice.subject

    snapshot = database_snapshot()
    assert pipeline.run_submission(submission.pk) == State.SCORED  # a redelivered task
    assert database_snapshot() == snapshot
    assert SubmissionResult.objects.filter(submission=submission).count() == 1
    assert len(mail.outbox) == 1


def test_redelivery_while_a_worker_holds_it_does_nothing(make_team, submit):
    submission = submit(make_team("Alpha"))
    assert transitions.transition(submission.pk, State.VALIDATING, "taken", worker="other:1",
                                  attempts=F("attempts") + 1)
    snapshot = database_snapshot()
    assert pipeline.run_submission(submission.pk) == State.VALIDATING
    assert database_snapshot() == snapshot
    assert pipeline.run_submission(987654321) == "missing"


def test_results_are_stored_once_even_when_two_deliveries_finish(make_team, submit):
    submission = submit(make_team("Alpha"))
    assert transitions.transition(submission.pk, State.VALIDATING, "v")
    assert transitions.transition(submission.pk, State.SCORING, "s")
    assert pipeline.store_result(submission.pk, score_report(0.5), 1.0) == State.SCORED
    assert pipeline.store_result(submission.pk, score_report(0.9), 1.0) == State.SCORED
    assert list(SubmissionResult.objects.filter(submission=submission).values_list("total", flat=True)) == [0.5]
    assert DatasetScore.objects.filter(result__submission=submission).count() == len(INPUT_LAYOUT)
    assert ImageScore.objects.filter(result__submission=submission).count() == len(INPUT_LAYOUT)
    assert [s for s, _ in events_of(submission)].count(State.SCORED) == 1


def test_a_run_cancelled_while_scoring_stores_no_result(make_team, submit):
    team = make_team("Alpha")
    submission = submit(team)
    assert transitions.transition(submission.pk, State.VALIDATING, "v")
    assert transitions.transition(submission.pk, State.SCORING, "s")
    assert cancel_submission(submission, team.created_by)
    assert pipeline.store_result(submission.pk, score_report(), 1.0) == State.CANCELLED
    assert not SubmissionResult.objects.filter(submission=submission).exists()
    assert not DatasetScore.objects.exists() and not ImageScore.objects.exists()


# --------------------------------------------------------------------------- limits


def tomorrow() -> str:
    return f"{timezone.now().date() + timedelta(days=1):%Y-%m-%d} 00:00 UTC"


def test_daily_limit_and_infrastructure_failures_give_the_slot_back(
    client, settings, tmp_path, storage, loaded_phase, make_team, make_archive, submit,
):
    loaded_phase.max_per_day, loaded_phase.max_running = 2, 10
    loaded_phase.save()
    team = make_team("Alpha")
    first, second = submit(team), submit(team)
    with pytest.raises(SubmissionRefused) as refused:
        submit(team)
    message = str(refused.value)
    assert "2 submissions a day" in message and "used them all today" in message
    assert f"resets at {tomorrow()}" in message
    assert Submission.objects.filter(team=team).count() == 2
    assert len(list((storage / "media" / "submissions").rglob("*.zip"))) == 2  # the refused one is not stored

    # Over the API the refusal is a 429 with the same sentence.
    token = ApiToken.objects.create(user=team.created_by)
    response = client.post(reverse("api-submit", args=[loaded_phase.pk]),
                           {"archive": upload_file(make_archive())},
                           HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 429 and f"resets at {tomorrow()}" in response.json()["error"]

    # The models cannot load (an empty weights folder): the platform's fault, the slot comes back.
    empty = tmp_path / "no-weights"
    empty.mkdir()
    settings.FR_WEIGHTS_DIR = str(empty)
    assert quota_status(loaded_phase, team).used_today == 2
    assert pipeline.run_submission(first.pk) == State.FAILED
    first.refresh_from_db()
    assert first.counts_toward_quota is False
    assert "scoring models could not be loaded" in first.error
    assert "does not count against your team's quota" in events_of(first)[-1][1]
    status = quota_status(loaded_phase, team)
    assert (status.used_today, status.used_total, status.remaining_today) == (1, 1, 1)
    third = submit(team)
    assert third.state == State.SUBMITTED
    with pytest.raises(SubmissionRefused, match="a day"):
        submit(team)
    assert second.pk != third.pk


def test_yesterdays_submissions_do_not_count_today(loaded_phase, make_team, submit):
    loaded_phase.max_per_day, loaded_phase.max_running = 1, 10
    loaded_phase.save()
    team = make_team("Alpha")
    old = submit(team)
    Submission.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=1))
    status = quota_status(loaded_phase, team)
    assert (status.used_today, status.used_total) == (0, 1)
    submit(team)
    with pytest.raises(SubmissionRefused, match="1 submissions a day"):
        submit(team)


def test_total_limit_counts_everything_but_cancelled_and_refunded_runs(loaded_phase, make_team, submit):
    loaded_phase.max_total, loaded_phase.max_per_day, loaded_phase.max_running = 2, 10, 10
    loaded_phase.save()
    team, other = make_team("Alpha"), make_team("Beta")
    first = submit(team)
    submit(team)
    with pytest.raises(SubmissionRefused) as refused:
        submit(team)
    assert str(refused.value) == "This phase allows 2 submissions in total and your team has used them all."
    submit(other)  # limits are per team
    assert cancel_submission(first, team.created_by)
    assert quota_status(loaded_phase, team).used_total == 1
    submit(team)
    with pytest.raises(SubmissionRefused, match="2 submissions in total"):
        submit(team)


def test_running_at_once_limit(loaded_phase, make_team, make_archive, submit):
    loaded_phase.max_running = 1
    loaded_phase.save()
    team = make_team("Alpha")
    first = submit(team, archive=make_archive(skip={CELEBA}))
    with pytest.raises(SubmissionRefused) as refused:
        submit(team)
    assert "1 submission(s) being processed (at most 1 at once)" in str(refused.value)
    assert pipeline.run_submission(first.pk) == State.REJECTED  # finished: no longer running
    assert quota_status(loaded_phase, team).running == 0
    assert submit(team).state == State.SUBMITTED


@pytest.mark.parametrize("case", ["closed", "disqualified", "empty", "too_large", "other_challenge"])
def test_uploads_refused_before_anything_is_stored(case, storage, loaded_phase, make_team, submit,
                                                   tmp_path):
    from competitions.services import create_challenge

    team = make_team("Alpha")
    archive = None
    expected = {
        "closed": "is not open", "disqualified": "disqualified", "empty": "empty",
        "too_large": "this phase accepts at most", "other_challenge": "another challenge",
    }[case]
    if case == "closed":
        loaded_phase.closes_at = timezone.now() - timedelta(minutes=1)
        loaded_phase.save()
    elif case == "disqualified":
        team.disqualified = True
        team.save()
    elif case == "empty":
        archive = tmp_path / "empty.zip"
        archive.write_bytes(b"")
    elif case == "too_large":
        loaded_phase.max_archive_bytes = 100
        loaded_phase.save()
    else:
        team = make_team("Gamma", in_challenge=create_challenge(slug="other", title="Other"))
    with pytest.raises(SubmissionRefused, match=expected):
        submit(team, archive=archive)
    assert not Submission.objects.exists()
    assert not (storage / "media" / "submissions").exists()


@pytest.mark.django_db(transaction=True)
def test_upload_is_sent_to_the_broker_once_committed(make_team, submit, scoring_queue):
    submission = submit(make_team("Alpha"), enqueue=True)
    assert scoring_queue(submission.pk) == [("submissions.tasks.score_submission", [submission.pk])]


# --------------------------------------------------------------------------- watchdog


def start_attempt(submission: Submission, worker: str = "w:1") -> None:
    """What a worker does when it takes a submission (and then dies without a word)."""
    assert transitions.transition(submission.pk, State.VALIDATING, "Checking the archive.",
                                  sources=(State.SUBMITTED,), worker=worker, attempts=F("attempts") + 1)
    assert transitions.transition(submission.pk, State.SCORING, "Scoring.", sources=(State.VALIDATING,))


def go_silent(submission: Submission, settings) -> None:
    silent = timezone.now() - timedelta(seconds=settings.FR_HEARTBEAT_TIMEOUT + 5)
    Submission.objects.filter(pk=submission.pk).update(heartbeat_at=silent, created_at=silent)


def test_watchdog_requeues_a_silent_run_and_leaves_live_ones(settings, make_team, submit, scoring_queue):
    team = make_team("Alpha")
    settings.FR_MAX_ATTEMPTS = 3
    stale, live = submit(team), submit(team)
    start_attempt(stale, "dead:1")
    start_attempt(live, "alive:2")
    go_silent(stale, settings)

    assert watchdog.sweep() == {"requeued": 1, "failed": 0, "resent": 0, "uploads_aborted": 0}
    stale.refresh_from_db()
    assert (stale.state, stale.attempts, stale.worker, stale.heartbeat_at) == (State.SUBMITTED, 1, "", None)
    assert stale.counts_toward_quota is True
    state, message = events_of(stale)[-1]
    assert state == State.SUBMITTED
    assert "dead:1 stopped responding" in message and "attempt 2 of 3" in message
    live.refresh_from_db()
    assert (live.state, live.worker) == (State.SCORING, "alive:2")
    # Sent to the broker again, exactly once.
    assert scoring_queue(stale.pk, live.pk) == [("submissions.tasks.score_submission", [stale.pk])]


def test_watchdog_gives_up_after_max_attempts_and_refunds_the_slot(settings, loaded_phase, make_team, submit,
                                                                   scoring_queue):
    settings.FR_MAX_ATTEMPTS = 3
    team = make_team("Alpha")
    submission = submit(team)
    assert quota_status(loaded_phase, team).used_today == 1
    for attempt in range(1, 4):
        start_attempt(submission)
        go_silent(submission, settings)
        outcome = watchdog.sweep()
        submission.refresh_from_db()
        assert submission.attempts == attempt
        if attempt < 3:
            assert outcome["requeued"] == 1 and submission.state == State.SUBMITTED
        else:
            assert outcome["failed"] == 1 and submission.state == State.FAILED
    assert submission.counts_toward_quota is False
    assert submission.error == "watchdog: attempts exhausted"
    message = events_of(submission)[-1][1]
    assert "did not finish after 3 attempts" in message and "does not count against your team's quota" in message
    assert quota_status(loaded_phase, team).used_today == 0
    # Nothing is left in a non-final state, and later sweeps leave the failed run alone.
    assert not Submission.objects.filter(state__in=Submission.ACTIVE_STATES).exists()
    assert watchdog.sweep() == {"requeued": 0, "failed": 0, "resent": 0, "uploads_aborted": 0}
    assert [task for task, _ in scoring_queue(submission.pk)] == ["submissions.tasks.score_submission"] * 2


def test_watchdog_handles_runs_past_the_time_limit_and_lost_messages(settings, make_team, submit, scoring_queue):
    settings.FR_SCORING_TIME_LIMIT = 60
    team = make_team("Alpha")
    too_long, lost, fresh = submit(team), submit(team), submit(team)
    start_attempt(too_long)  # heartbeats keep coming, but it has run far too long
    Submission.objects.filter(pk=too_long.pk).update(started_at=timezone.now() - timedelta(seconds=200))
    long_ago = timezone.now() - timedelta(seconds=settings.FR_RESEND_AFTER + 5)
    Submission.objects.filter(pk=lost.pk).update(created_at=long_ago, queued_at=long_ago)
    assert watchdog.sweep() == {"requeued": 1, "failed": 0, "resent": 1, "uploads_aborted": 0}
    # Sent again just now: the next sweeps leave it waiting instead of flooding the queue.
    assert watchdog.sweep()["resent"] == 0
    assert Submission.objects.get(pk=too_long.pk).state == State.SUBMITTED
    assert Submission.objects.get(pk=lost.pk).state == State.SUBMITTED  # only sent again
    sent = scoring_queue(too_long.pk, lost.pk, fresh.pk)
    assert sorted(args[0] for _, args in sent) == sorted([too_long.pk, lost.pk])
    assert Submission.objects.get(pk=fresh.pk).state == State.SUBMITTED
