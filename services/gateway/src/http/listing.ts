/** Bumped when generated HTML (directory listings, document previews) changes, so caches revalidate. */
export const LISTING_VERSION = 'mycel1'

/** Generated HTML may change with this gateway's version: cached for a week, not forever. */
export const LISTING_CACHE_CONTROL = 'public, max-age=604800, stale-while-revalidate=2678400'

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}
