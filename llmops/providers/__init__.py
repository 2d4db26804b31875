"""Provider adapters: one small class per wire format behind `ProviderAdapter`."""
