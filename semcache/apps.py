from django.apps import AppConfig


class SemcacheConfig(AppConfig):
    name = "semcache"
    verbose_name = "Semantic cache"
