"""Admin: edit each team's cache policy (threshold, TTL, sharing); read the threshold moves."""

from django.contrib import admin

from semcache.models import TeamCachePolicy, ThresholdChange


@admin.register(TeamCachePolicy)
class TeamCachePolicyAdmin(admin.ModelAdmin):
    list_display = ("team", "enabled", "similarity_threshold", "ttl_hours", "share_across_teams",
                    "updated_at")
    list_filter = ("enabled", "share_across_teams")
    search_fields = ("team__name",)
    autocomplete_fields = ()


@admin.register(ThresholdChange)
class ThresholdChangeAdmin(admin.ModelAdmin):
    """Read-only: the log of thresholds moved by verified hits."""

    list_display = ("created_at", "namespace", "team", "old_threshold", "new_threshold", "agree",
                    "disagree", "precision_low", "precision_high", "target")
    list_filter = ("team",)
    search_fields = ("namespace", "team__name")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
