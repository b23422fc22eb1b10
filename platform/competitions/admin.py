from django.contrib import admin

from competitions.models import Challenge, ChallengePage, Download, InputDataset, Phase, PhaseFile, Registration

admin.site.register(Challenge)
admin.site.register(Phase)
admin.site.register(InputDataset)

admin.site.register(ChallengePage)
admin.site.register(Registration)


@admin.register(PhaseFile)
class PhaseFileAdmin(admin.ModelAdmin):
    list_display = ("name", "phase", "kind", "version", "size", "created_at")
    list_filter = ("kind",)


@admin.register(Download)
class DownloadAdmin(admin.ModelAdmin):
    list_display = ("at", "user", "phase", "name", "kind", "via")
    list_filter = ("kind", "via")
