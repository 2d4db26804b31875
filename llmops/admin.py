"""Admin for teams and API keys. A key's secret is shown once, right after creation."""

from functools import partial

from django.contrib import admin, messages
from django.urls import path

from budgets.admin import ApiKeyBudgetInline, TeamBudgetInline, budget_admin_link
from llmops.models import ApiKey, RateLimitRefusal, Team
from llmops.services import api_key_issue


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    extra = 0
    fields = ("masked", "user", "name", "tier", "is_active", "expires_at", "last_used_at")
    readonly_fields = ("masked", "last_used_at")
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False  # keys are issued from the API key page, which shows the secret once


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "default_max_tokens", "budget", "created_at")
    search_fields = ("name",)
    inlines = [TeamBudgetInline, ApiKeyInline]

    @admin.display(description="Budget")
    def budget(self, obj: Team) -> str:
        return budget_admin_link(obj)

    def get_urls(self):
        from llmops.observability.savings_admin import savings_admin_view

        # Staff only, as every admin page: admin_view sends anyone else to the login page.
        view = self.admin_site.admin_view(partial(savings_admin_view, admin_site=self.admin_site))
        return [path("savings/", view, name="llmops_team_savings"), *super().get_urls()]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("masked", "team", "user", "name", "tier", "is_active", "expires_at",
                    "budget", "created_at")
    list_filter = ("tier", "is_active", "team")
    search_fields = ("prefix", "name", "team__name", "user__username")
    readonly_fields = ("masked", "created_at", "last_used_at")
    fields = ("team", "user", "name", "tier", "is_active", "expires_at", "masked", "created_at",
              "last_used_at")
    autocomplete_fields = ("team",)
    actions = ["revoke"]
    inlines = [ApiKeyBudgetInline]

    @admin.display(description="Budget")
    def budget(self, obj: ApiKey) -> str:
        return budget_admin_link(obj)

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        issued = api_key_issue(team=obj.team, user=obj.user, tier=obj.tier, name=obj.name,
                               expires_at=obj.expires_at)
        obj.pk = issued.api_key.pk
        obj.prefix = issued.api_key.prefix
        self.message_user(
            request,
            f"New API key (copy it now; it will not be shown again): {issued.key}",
            level=messages.WARNING,
        )

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset) -> None:
        count = queryset.update(is_active=False)
        self.message_user(request, f"Revoked {count} key(s).")


@admin.register(RateLimitRefusal)
class RateLimitRefusalAdmin(admin.ModelAdmin):
    """Requests the per-key rate limit refused, per key and UTC day (read-only)."""

    list_display = ("day", "key", "team", "refused", "updated_at")
    list_filter = (("api_key__team", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("=api_key__prefix",)
    list_select_related = ("api_key__team",)
    date_hierarchy = "day"

    @admin.display(description="key", ordering="api_key__prefix")
    def key(self, obj: RateLimitRefusal) -> str:
        return obj.api_key.masked

    @admin.display(description="team", ordering="api_key__team__name")
    def team(self, obj: RateLimitRefusal) -> str:
        return obj.api_key.team.name

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
