export const TIERED_CACHE_VERSION = '0.1.0';
