"""Admin: edit each team's cache policy (threshold, TTL, cross-tenant sharing)."""

from django.contrib import admin

from semcache.models import TeamCachePolicy


@admin.register(TeamCachePolicy)
class TeamCachePolicyAdmin(admin.ModelAdmin):
    list_display = ("team", "enabled", "similarity_threshold", "ttl_hours", "share_across_teams",
                    "updated_at")
    list_filter = ("enabled", "share_across_teams")
    search_fields = ("team__name",)
    autocomplete_fields = ()
