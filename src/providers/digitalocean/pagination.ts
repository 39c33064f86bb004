// Collections are read page by page with per_page=200, following links.pages.next until it is absent (the rule
// godo's IsLastPage uses). A next link is followed on the configured API base only, so the token never goes to
// another host, and a repeated or runaway link ends the walk with an error instead of looping.
import type { z } from 'zod';
import { ProviderError } from '../../lib/errors.js';
import type { DigitalOceanClient, Query } from './client.js';
import { pageOf } from './schemas.js';

export const PER_PAGE = 200;
const MAX_PAGES = 500;

export async function listAll<T extends z.ZodType>(
  client: DigitalOceanClient,
  path: string,
  key: string,
  item: T,
  query: Query = {},
): Promise<Array<z.output<T>>> {
  const schema = pageOf(key, item);
  const items: Array<z.output<T>> = [];
  const seen = new Set<string>();
  let next: string | undefined = path;
  let nextQuery: Query | undefined = { ...query, per_page: PER_PAGE };
  for (let page = 0; next !== undefined; page++) {
    if (page >= MAX_PAGES) {
      throw new ProviderError(`DigitalOcean API GET ${path}: more than ${MAX_PAGES} pages`, {
        hint: 'DigitalOcean returned an endless list; please report this',
      });
    }
    const body = (await client.get(next, schema, nextQuery ? { query: nextQuery } : {})) as Record<string, unknown> & {
      links?: { pages?: { next?: string | null } | null } | null;
    };
    items.push(...((body[key] as Array<z.output<T>> | undefined) ?? []));
    const link = body.links?.pages?.next ?? undefined;
    next = link ? relativeTo(client.baseUrl, link) : undefined;
    nextQuery = undefined;
    if (next !== undefined) {
      if (seen.has(next)) {
        throw new ProviderError(`DigitalOcean API GET ${path}: the next-page link repeats (${next})`, {
          hint: 'DigitalOcean returned a looping list; please report this',
        });
      }
      seen.add(next);
    }
  }
  return items;
}

/** The request path (with query) for a next link, resolved against the API base whatever host the link names. */
export function relativeTo(baseUrl: string, link: string): string {
  const base = new URL(baseUrl);
  const url = new URL(link, base);
  const prefix = base.pathname.replace(/\/+$/, '');
  const path =
    url.origin === base.origin && prefix && url.pathname.startsWith(`${prefix}/`)
      ? url.pathname.slice(prefix.length)
      : url.pathname;
  return `${path}${url.search}`;
}
