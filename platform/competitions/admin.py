from django.contrib import admin

from competitions.models import Challenge, InputDataset, Phase

admin.site.register(Challenge)
admin.site.register(Phase)
admin.site.register(InputDataset)
