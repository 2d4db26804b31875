"""Admin for model profiles, router aliases and labeled routing examples (thin: no logic)."""

from django.contrib import admin

from routing.models import ModelProfile, RouterAlias, RoutingExample

OBSERVED = ("observed_latency_p50_ms", "observed_latency_p95_ms", "observed_ttft_p50_ms",
            "observed_error_rate", "observed_samples", "observed_at")


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
    list_display = ("name", "provider", "upstream_model", "tier", "input_price_per_token",
                    "output_price_per_token", "quality_score", "context_window",
                    "observed_latency_p95_ms", "observed_error_rate", "enabled")
    list_filter = ("provider", "tier", "enabled")
    search_fields = ("name", "upstream_model")
    readonly_fields = OBSERVED + ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("name", "provider", "upstream_model", "base_url", "api_key_env",
                           "tier", "enabled", "fallbacks", "options")}),
        ("Prices (USD per token)", {"fields": (
            "input_price_per_token", "output_price_per_token", "cached_input_price_per_token",
            "reasoning_price_per_token", "catalog_key")}),
        ("Limits and capabilities", {"fields": (
            "context_window", "max_output_tokens", "supports_streaming", "supports_tools",
            "supports_json_mode", "supports_vision")}),
        ("Quality and latency", {"fields": ("quality_score", "typical_latency_ms")}),
        ("Observed (from the ledger, read-only)", {"fields": OBSERVED}),
        ("History", {"fields": ("created_at", "updated_at")}),
    )


@admin.register(RouterAlias)
class RouterAliasAdmin(admin.ModelAdmin):
    list_display = ("name", "team", "min_quality", "max_latency_ms", "enabled")
    list_filter = ("enabled",)
    search_fields = ("name",)


@admin.register(RoutingExample)
class RoutingExampleAdmin(admin.ModelAdmin):
    list_display = ("short_prompt", "model_name", "tier", "score", "source", "created_at")
    list_filter = ("tier", "source")
    search_fields = ("prompt", "model_name", "request_id")
    exclude = ("embedding",)
    readonly_fields = ("prompt_hash", "created_at")

    @admin.display(description="prompt")
    def short_prompt(self, obj: RoutingExample) -> str:
        return obj.prompt[:80]
