from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts import services
from accounts.models import ApiToken, email_verified, new_token_key


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="Where we tell you that a submission is scored.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")

    def clean_email(self) -> str:
        # The database holds each address once whatever its case (accounts' migration 0002); say so first.
        email = self.cleaned_data["email"].strip()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email address exists already; "
                                        "log in, or reset its password.")
        return email


def _send_verification(request, user) -> None:
    token = services.email_verification_token(user)
    services.send_verification_email(user, request.build_absolute_uri(reverse("verify-email", args=[token])))


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        if settings.FR_EMAIL_VERIFICATION:
            _send_verification(request, user)
            messages.info(request, f"We sent a link to {user.email}: follow it to verify your address "
                                   "before you register for a challenge.")
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


def verify_email(request, token):
    try:
        user = services.verify_email(token)
    except services.AccountError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Email address {user.email} verified.")
    return redirect("account")


@login_required
def account(request):
    if request.method == "POST":
        try:
            services.update_profile(request.user, full_name=request.POST.get("full_name", ""),
                                    affiliation=request.POST.get("affiliation", ""))
        except services.AccountError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Profile saved.")
        return redirect("account")
    return render(request, "registration/account.html", {
        "verification": settings.FR_EMAIL_VERIFICATION, "verified": email_verified(request.user),
        "profile": getattr(request.user, "profile", None),
    })


@login_required
@require_POST
def resend_verification(request):
    if email_verified(request.user):
        messages.info(request, "Your email address is verified already.")
    else:
        _send_verification(request, request.user)
        messages.success(request, f"We sent a new link to {request.user.email}.")
    return redirect("account")


@login_required
def api_token(request):
    token, _ = ApiToken.objects.get_or_create(user=request.user)
    return render(request, "registration/token.html", {"token": token})


@login_required
@require_POST
def regenerate_token(request):
    ApiToken.objects.update_or_create(user=request.user, defaults={"key": new_token_key()})
    return redirect("api-token")
