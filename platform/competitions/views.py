from django.shortcuts import render

from competitions import selectors


def home(request):
    return render(request, "home.html", {"challenges": selectors.open_challenges()})
