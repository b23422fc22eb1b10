from accounts import views as account_views
from accounts.ratelimit import LOGIN_LIMITS, SIGNUP_LIMIT, limit_posts, upload_limit
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path
from django.views.generic import TemplateView

from competitions import data_views
from competitions import views as competition_views
from competitions.data_api import data_api
from leaderboard import views as leaderboard_views
from submissions import api
from submissions import views as submission_views
from submissions.upload_limits import phase_size_limit
from teams import views as team_views


def session_user(request):
    return request.user if request.user.is_authenticated else None


def limited_upload(view, json: bool = False):
    """The hourly upload limit, keyed on who the view will act for: the token's user over the API,
    the session's on the site (which ignores any Authorization header)."""
    return upload_limit(view, identity=api.token_user if json else session_user, json=json)


def health(request):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("", competition_views.home, name="home"),
    path("healthz", health, name="health"),
    # Before admin.site.urls, so the admin's own login form counts against the same limits.
    path("admin/login/", limit_posts(*LOGIN_LIMITS)(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/login/", limit_posts(*LOGIN_LIMITS)(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", limit_posts(*SIGNUP_LIMIT)(account_views.signup), name="signup"),
    # Django's own password views and tokens, under the login's rate limits.
    path("accounts/password_reset/", limit_posts(*LOGIN_LIMITS)(auth_views.PasswordResetView.as_view()),
         name="password_reset"),
    path("accounts/password_reset/done/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path("accounts/reset/<uidb64>/<token>/",
         limit_posts(*LOGIN_LIMITS)(auth_views.PasswordResetConfirmView.as_view()), name="password_reset_confirm"),
    path("accounts/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("accounts/password_change/", limit_posts(*LOGIN_LIMITS)(auth_views.PasswordChangeView.as_view()),
         name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(),
         name="password_change_done"),
    path("accounts/", account_views.account, name="account"),
    path("accounts/verify/<str:token>/", account_views.verify_email, name="verify-email"),
    path("accounts/verify-again/", limit_posts(*LOGIN_LIMITS)(account_views.resend_verification),
         name="verify-email-again"),
    path("accounts/token/", account_views.api_token, name="api-token"),
    path("accounts/token/regenerate/", account_views.regenerate_token, name="api-token-regenerate"),
    path("c/<slug:slug>/", competition_views.challenge_detail, name="challenge-detail"),
    path("c/<slug:slug>/pages/<slug:page>/", competition_views.challenge_detail, name="challenge-page"),
    path("c/<slug:slug>/register/", competition_views.register, name="challenge-register"),
    path("c/<slug:slug>/teams/new/", team_views.create, name="team-create"),
    path("c/<slug:slug>/p/<slug:phase>/", competition_views.phase_detail, name="phase-detail"),
    path("c/<slug:slug>/p/<slug:phase>/data/<int:file_id>/", data_views.phase_file_download, name="phase-file"),
    path("c/<slug:slug>/p/<slug:phase>/submit/", limited_upload(phase_size_limit(submission_views.upload)),
         name="submission-upload"),
    path("c/<slug:slug>/p/<slug:phase>/leaderboard/", leaderboard_views.leaderboard, name="leaderboard"),
    path("c/<slug:slug>/p/<slug:phase>/leaderboard.json", leaderboard_views.leaderboard_json,
         name="leaderboard-json"),
    path("c/<slug:slug>/p/<slug:phase>/leaderboard-charts.json", leaderboard_views.leaderboard_charts_json,
         name="leaderboard-charts"),
    path("c/<slug:slug>/p/<slug:phase>/leaderboard/rank-stability/", leaderboard_views.rank_stability,
         name="rank-stability"),
    path("c/<slug:slug>/p/<slug:phase>/rank-stability.json", leaderboard_views.rank_stability_json,
         name="rank-stability-json"),
    path("c/<slug:slug>/p/<slug:phase>/rank-stability.csv", leaderboard_views.rank_stability_csv,
         name="rank-stability-csv"),
    path("teams/<int:pk>/", team_views.detail, name="team-detail"),
    path("teams/<int:pk>/invite/", team_views.invite, name="team-invite"),
    path("teams/<int:pk>/leave/", team_views.leave, name="team-leave"),
    path("teams/<int:pk>/invitations/<int:invitation_id>/revoke/", team_views.revoke, name="team-invitation-revoke"),
    path("teams/<int:pk>/remove/", team_views.remove_member, name="team-remove-member"),
    path("teams/join/<str:token>/", team_views.join, name="team-join"),
    path("submissions/<int:pk>/", submission_views.detail, name="submission-detail"),
    path("submissions/<int:pk>/status.json", submission_views.status_json, name="submission-status"),
    path("submissions/<int:pk>/select/", submission_views.select, name="submission-select"),
    path("submissions/<int:pk>/factsheet/", submission_views.attach_factsheet, name="submission-factsheet"),
    path("submissions/<int:pk>/restored/<str:dataset>/<str:stem>.png", submission_views.restored_image,
         name="submission-restored-image"),
    path("submissions/<int:pk>/input/<str:dataset>/<str:stem>.png", submission_views.input_image,
         name="submission-input-image"),
    path("api/", TemplateView.as_view(template_name="api_docs.html"), name="api-docs"),
    path("organize/", include("organizers.urls")),
    path("api/v1/challenges", api.challenges, name="api-challenges"),
    path("api/v1/phases/<int:phase_id>/submissions",
         limited_upload(phase_size_limit(api.submit, check_csrf=False), json=True), name="api-submit"),
    path("api/v1/phases/<int:phase_id>/leaderboard", api.leaderboard, name="api-leaderboard"),
    path("api/v1/phases/<int:phase_id>/rank-stability", api.rank_stability, name="api-rank-stability"),
    path("api/v1/submissions/<int:pk>", api.submission, name="api-submission"),
    path("api/v1/phases/<int:phase_id>/uploads", limited_upload(api.start_upload, json=True), name="api-upload-start"),
    path("api/v1/uploads/<int:upload_id>/finish", api.finish_upload, name="api-upload-finish"),
    # The downloads' django-ninja router on its own NinjaAPI (its paths collide with none above).
    path("api/v1/", data_api.urls),
]
