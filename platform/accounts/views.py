from django import forms
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.models import ApiToken, new_token_key


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="Where we tell you that a submission is scored.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


def signup(request):
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user)
        return redirect("home")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def api_token(request):
    token, _ = ApiToken.objects.get_or_create(user=request.user)
    return render(request, "registration/token.html", {"token": token})


@login_required
@require_POST
def regenerate_token(request):
    ApiToken.objects.update_or_create(user=request.user, defaults={"key": new_token_key()})
    return redirect("api-token")
