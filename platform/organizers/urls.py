"""Organizer pages, mounted at /organize/ (frplatform/urls.py)."""

from django.urls import path

from organizers import views

app_name = "organizers"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("new/", views.challenge_create, name="challenge-create"),
    path("import/", views.bundle_import, name="bundle-import"),
    path("c/<slug:slug>/", views.challenge_home, name="challenge"),
    path("c/<slug:slug>/bundle.zip", views.bundle_download, name="bundle"),
    path("c/<slug:slug>/new-edition/", views.new_edition, name="new-edition"),
    path("c/<slug:slug>/phases/new/", views.phase_create, name="phase-create"),
    path("c/<slug:slug>/queue/", views.queue, name="queue"),
    path("c/<slug:slug>/pages/", views.pages, name="pages"),
    path("c/<slug:slug>/pages/<int:page_id>/", views.pages, name="page"),
    path("c/<slug:slug>/registrations/", views.registrations, name="registrations"),
    path("c/<slug:slug>/participants.csv", views.participants_csv, name="participants-csv"),
    path("c/<slug:slug>/p/<slug:phase>/", views.phase_home, name="phase"),
    path("c/<slug:slug>/p/<slug:phase>/edit/", views.phase_edit, name="phase-edit"),
    path("c/<slug:slug>/p/<slug:phase>/publish/", views.phase_publish, name="phase-publish"),
    path("c/<slug:slug>/p/<slug:phase>/inputs/", views.input_set_upload, name="input-set"),
    path("c/<slug:slug>/p/<slug:phase>/inputs/jobs/<int:pk>/", views.input_set_job, name="input-set-job"),
    path("c/<slug:slug>/p/<slug:phase>/inputs/jobs/<int:pk>.json", views.input_set_job_json,
         name="input-set-job-json"),
    path("c/<slug:slug>/p/<slug:phase>/files/", views.extra_file_add, name="extra-file"),
    path("c/<slug:slug>/p/<slug:phase>/files/<int:file_id>/delete/", views.extra_file_delete,
         name="extra-file-delete"),
    path("c/<slug:slug>/p/<slug:phase>/files/build/", views.data_build, name="data-build"),
    path("c/<slug:slug>/p/<slug:phase>/rerun/", views.phase_rerun, name="phase-rerun"),
    path("c/<slug:slug>/p/<slug:phase>/baseline/", views.baseline_add, name="baseline"),
    path("c/<slug:slug>/p/<slug:phase>/email/", views.phase_email, name="email"),
    path("c/<slug:slug>/p/<slug:phase>/leaderboard.csv", views.leaderboard_csv, name="leaderboard-csv"),
    path("c/<slug:slug>/p/<slug:phase>/rank-stability/", views.rank_stability, name="rank-stability"),
    path("c/<slug:slug>/p/<slug:phase>/results.zip", views.results_zip, name="results-zip"),
    path("c/<slug:slug>/p/<slug:phase>/archives.zip", views.archives_zip, name="archives-zip"),
    path("submissions/<int:pk>/cancel/", views.submission_cancel, name="submission-cancel"),
    path("submissions/<int:pk>/rerun/", views.submission_rerun, name="submission-rerun"),
    path("submissions/<int:pk>/verify/", views.submission_verify, name="submission-verify"),
    path("submissions/<int:pk>/factsheet/", views.submission_factsheet, name="submission-factsheet"),
    path("teams/<int:pk>/disqualify/", views.team_disqualify, name="team-disqualify"),
]
