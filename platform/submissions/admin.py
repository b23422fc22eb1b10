from django.contrib import admin

from submissions.models import Submission, SubmissionEvent


class EventInline(admin.TabularInline):
    model = SubmissionEvent
    extra = 0
    readonly_fields = ("at", "state", "message")


@admin.register(Submission)
class SubmissionAdmin(admin.ModelAdmin):
    list_display = ("pk", "phase", "team", "state", "created_at", "attempts", "worker")
    list_filter = ("state", "phase")
    readonly_fields = ("state",)  # states change only through submissions.transitions
    inlines = [EventInline]
