from django.contrib import admin

from competitions.models import Challenge, ChallengePage, InputDataset, Phase, Registration

admin.site.register(Challenge)
admin.site.register(Phase)
admin.site.register(InputDataset)

admin.site.register(ChallengePage)
admin.site.register(Registration)
