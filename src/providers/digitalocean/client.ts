// The HTTP client for DigitalOcean's API v2: bearer auth, per-request timeouts, retries with jittered backoff on
// 429 and 5xx (honouring retry-after, else ratelimit-reset when the hourly budget is spent), defensive error
// parsing and lenient zod validation of successful bodies.
//
// Retry rules. Idempotent requests (GET, PUT, DELETE, and POSTs marked idempotent) are retried on 429, 5xx except
// 501, network errors and timeouts, and on the transient 422s "Please try again" and "pending event". A create
// (a non-idempotent POST) is retried only when DigitalOcean certainly did not act on it: 429, those 422s, or a
// connection that was never made. Any other failure of a create is raised with `ambiguous: true`, and the caller
// looks for the result (by tag, fingerprint or name) instead of posting twice.
import axios, { type AxiosInstance, type AxiosResponse, isAxiosError } from 'axios';
import type { z } from 'zod';
import { backoffDelay } from '../../lib/backoff.js';
import type { Clock } from '../../lib/context.js';
import { InterruptedError, ProviderError, UsageError, isInnisfreeError } from '../../lib/errors.js';
import type { Emit } from '../../lib/events.js';
import { packageVersion } from '../../lib/package-root.js';
import { DigitalOceanError, parseErrorBody } from './api-errors.js';

export const DEFAULT_API_URL = 'https://api.digitalocean.com';

export interface ClientOptions {
  token: string;
  /** https://api.digitalocean.com unless DIGITALOCEAN_API_URL says otherwise (tests point it at the fake). */
  baseUrl?: string;
  clock: Clock;
  emit: Emit;
  signal?: AbortSignal;
  /** Per request, connect to last byte. Default 30 s. */
  timeoutMs?: number;
  /** Retries after the first attempt. Default 4. */
  maxRetries?: number;
  /** Longest single wait the client accepts for a rate limit before giving up. Default 5 minutes. */
  maxWaitMs?: number;
  /**
   * The instant (by `clock`) until which a request keeps waiting out rate limits (429, or 503 with retry-after):
   * the phase's budget, e.g. the end of the activation wait. Without it each request may wait up to maxWaitMs in
   * all. Rate-limited retries are bounded by this time, not by maxRetries.
   */
  deadline?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  random?: () => number;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  /** Safe to repeat (default for GET/PUT/DELETE; POSTs must opt in). */
  idempotent?: boolean;
  /** Extra request headers (never the Authorization header). */
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  data: unknown;
  headers: Record<string, string>;
}

const TRANSIENT_422 = /please try again|pending event/i;
const NEVER_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * Validates DIGITALOCEAN_API_URL: https anywhere, plain http only to this machine (the token must not travel in clear).
 */
export function apiBaseUrl(value: string | undefined): string {
  if (!value) return DEFAULT_API_URL;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(`DIGITALOCEAN_API_URL: "${value}" is not a URL`, {
      hint: `unset it to use ${DEFAULT_API_URL}`,
    });
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopbackHostname(url.hostname))) {
    throw new UsageError(`DIGITALOCEAN_API_URL: ${url.origin} would send the token unencrypted`, {
      hint: 'use an https:// URL (plain http is accepted only for 127.0.0.1, ::1 and localhost)',
    });
  }
  return url.href.replace(/\/+$/, '');
}

/** A URL host on this machine (localhost, [::1], 127.x): plain http is allowed there, for a fake API in tests. */
function isLoopbackHostname(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

export class DigitalOceanClient {
  readonly baseUrl: string;
  readonly #http: AxiosInstance;
  readonly #options: Required<Omit<ClientOptions, 'token' | 'baseUrl' | 'signal' | 'deadline'>> & {
    signal: AbortSignal | undefined;
  };
  readonly #init: ClientOptions;
  #warnedBudget = false;

  constructor(options: ClientOptions) {
    this.#init = options;
    this.baseUrl = apiBaseUrl(options.baseUrl);
    this.#options = {
      clock: options.clock,
      emit: options.emit,
      signal: options.signal,
      timeoutMs: options.timeoutMs ?? 30_000,
      maxRetries: options.maxRetries ?? 4,
      maxWaitMs: options.maxWaitMs ?? 5 * 60_000,
      backoffMinMs: options.backoffMinMs ?? 1000,
      backoffMaxMs: options.backoffMaxMs ?? 30_000,
      random: options.random ?? Math.random,
    };
    this.#http = axios.create({
      baseURL: this.baseUrl,
      timeout: this.#options.timeoutMs,
      maxRedirects: 0,
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      ...(isLoopbackHostname(new URL(this.baseUrl).hostname) ? { proxy: false as const } : {}),
      headers: {
        Authorization: `Bearer ${options.token}`,
        Accept: 'application/json',
        'User-Agent': `innisfree/${packageVersion()}`,
      },
    });
  }

  /**
   * The same client with requests tied to another abort signal and events going elsewhere (one provider call: a
   * teardown after Ctrl-C has its own signal, so it is not cancelled by the interrupt it handles).
   */
  scoped(scope: { signal?: AbortSignal | undefined; emit?: Emit | undefined }): DigitalOceanClient {
    return new DigitalOceanClient({ ...this.#init, signal: scope.signal, emit: scope.emit ?? this.#init.emit });
  }

  /** The same client, waiting out rate limits until `deadline` (one phase's time budget, polls included). */
  until(deadline: number): DigitalOceanClient {
    return new DigitalOceanClient({ ...this.#init, deadline });
  }

  async get<S extends z.ZodType>(path: string, schema: S, options: RequestOptions = {}): Promise<z.output<S>> {
    return this.parse('GET', path, schema, await this.request('GET', path, options));
  }

  /** Like get, but a 404 resolves to undefined. */
  async find<S extends z.ZodType>(
    path: string,
    schema: S,
    options: RequestOptions = {},
  ): Promise<z.output<S> | undefined> {
    try {
      return await this.get(path, schema, options);
    } catch (error) {
      if (error instanceof DigitalOceanError && error.notFound) return undefined;
      throw error;
    }
  }

  async post<S extends z.ZodType>(
    path: string,
    body: unknown,
    schema: S,
    options: RequestOptions = {},
  ): Promise<z.output<S>> {
    return this.parse('POST', path, schema, await this.request('POST', path, { ...options, body }));
  }

  async put<S extends z.ZodType>(
    path: string,
    body: unknown,
    schema: S,
    options: RequestOptions = {},
  ): Promise<z.output<S>> {
    return this.parse('PUT', path, schema, await this.request('PUT', path, { ...options, body }));
  }

  /** DELETE; with `missingOk` a 404 counts as done. Resolves true when something was deleted. */
  async delete(path: string, options: RequestOptions & { missingOk?: boolean } = {}): Promise<boolean> {
    try {
      await this.request('DELETE', path, options);
      return true;
    } catch (error) {
      if (options.missingOk && error instanceof DigitalOceanError && error.notFound) return false;
      throw error;
    }
  }

  /** One API call with the retry rules above; resolves on 2xx, throws DigitalOceanError otherwise. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<ApiResponse> {
    const url = withQuery(path, options.query);
    const idempotent = options.idempotent ?? method !== 'POST';
    const shown = url.split('?')[0]!;
    const deadline = this.#init.deadline ?? this.#options.clock.now() + this.#options.maxWaitMs;
    // Failures other than rate limits are retried maxRetries times; rate limits are waited out until the deadline.
    let retries = 0;
    const firstAt = this.#options.clock.now();
    for (let attempt = 0; ; attempt++) {
      this.checkAborted();
      const started = this.#options.clock.now();
      let response: AxiosResponse<unknown>;
      try {
        response = await this.#http.request({
          method,
          url,
          ...(options.body === undefined ? {} : { data: options.body }),
          ...(options.headers ? { headers: options.headers } : {}),
          ...(this.#options.signal ? { signal: this.#options.signal } : {}),
        });
      } catch (error) {
        this.checkAborted();
        const code = networkCode(error);
        const neverSent = NEVER_SENT.has(code);
        const reason = describeNetworkError(code, this.#options.timeoutMs, this.baseUrl);
        this.debug(`${method} ${url} → ${reason}`);
        const retryable = idempotent || neverSent;
        if (retryable && retries < this.#options.maxRetries) {
          await this.sleep(this.backoff(retries++));
          continue;
        }
        throw new DigitalOceanError({
          method,
          path: shown,
          reason,
          attempts: attempt + 1,
          ambiguous: !neverSent && !idempotent,
        });
      }
      const headers = lowerCaseHeaders(response.headers);
      const status = response.status;
      this.debug(`${method} ${url} → ${status} (${this.#options.clock.now() - started} ms)`);
      this.watchBudget(headers);
      if (status >= 200 && status < 300) return { status, data: parseJson(response.data), headers };

      const body = parseErrorBody(response.data, status, headers['x-request-id']);
      const transient422 = status === 422 && TRANSIENT_422.test(body.message);
      const serverSide = status >= 500 && status !== 501;
      const rateLimited = status === 429 || (status === 503 && headers['retry-after'] !== undefined);
      let wait: number | undefined;
      if (rateLimited) {
        // Waited out however often it comes, as long as the wait ends inside the phase's budget.
        wait = this.rateLimitWait(headers, Math.min(attempt, 8));
        if (wait !== undefined && this.#options.clock.now() + wait > deadline) wait = undefined;
      } else if ((transient422 || (serverSide && idempotent)) && retries < this.#options.maxRetries) {
        wait = this.backoff(retries++);
      }
      if (wait !== undefined) {
        this.#options.emit({
          type: 'log',
          level: 'debug',
          message: `DigitalOcean ${method} ${shown}: ${status}, retrying in ${Math.ceil(wait / 1000)} s`,
        });
        await this.sleep(wait);
        continue;
      }
      throw new DigitalOceanError({
        method,
        path: shown,
        status,
        body,
        attempts: attempt + 1,
        ambiguous: serverSide && !idempotent,
        ...(rateLimited && attempt > 0 ? { overMs: this.#options.clock.now() - firstAt } : {}),
      });
    }
  }

  private parse<S extends z.ZodType>(method: string, path: string, schema: S, response: ApiResponse): z.output<S> {
    const parsed = schema.safeParse(response.data);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.') || '(body)'}: ${issue.message}` : 'unexpected shape';
    throw new ProviderError(
      `DigitalOcean API ${method} ${path.split('?')[0]} answered with an unexpected body (${where})`,
      {
        hint: 'DigitalOcean may have changed its API; please report this with the command you ran',
        status: response.status,
      },
    );
  }

  /** How long to wait after a 429 (or a 503 with retry-after); undefined when that is too long to be worth it. */
  private rateLimitWait(headers: Record<string, string>, attempt: number): number | undefined {
    const retryAfter = headers['retry-after'];
    let wait: number | undefined;
    if (retryAfter !== undefined) {
      const seconds = Number(retryAfter);
      wait = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(retryAfter) - this.#options.clock.now();
    } else if (headers['ratelimit-remaining'] === '0' && headers['ratelimit-reset'] !== undefined) {
      wait = Number(headers['ratelimit-reset']) * 1000 - this.#options.clock.now();
    }
    if (wait === undefined || !Number.isFinite(wait)) return this.backoff(attempt);
    const jittered = Math.max(0, wait) + Math.round(this.#options.random() * 250);
    return jittered > this.#options.maxWaitMs ? undefined : jittered;
  }

  private backoff(attempt: number): number {
    return backoffDelay(attempt, {
      minMs: this.#options.backoffMinMs,
      maxMs: this.#options.backoffMaxMs,
      random: this.#options.random,
    });
  }

  private watchBudget(headers: Record<string, string>): void {
    const remaining = Number(headers['ratelimit-remaining']);
    if (!this.#warnedBudget && Number.isFinite(remaining) && remaining < 100) {
      this.#warnedBudget = true;
      this.#options.emit({
        type: 'log',
        level: 'warn',
        message: `DigitalOcean API budget nearly spent: ${remaining} requests left in this hour for the token`,
      });
    }
  }

  private debug(message: string): void {
    this.#options.emit({ type: 'log', level: 'debug', message: `DigitalOcean ${message}`, source: 'digitalocean' });
  }

  async sleep(ms: number): Promise<void> {
    try {
      await this.#options.clock.sleep(ms, this.#options.signal);
    } catch (error) {
      this.checkAborted();
      throw error;
    }
  }

  checkAborted(): void {
    const signal = this.#options.signal;
    if (signal?.aborted) throw isInnisfreeError(signal.reason) ? signal.reason : new InterruptedError();
  }
}

function withQuery(path: string, query: Query | undefined): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  if (!text) return path;
  return `${path}${path.includes('?') ? '&' : '?'}${text}`;
}

function parseJson(data: unknown): unknown {
  if (typeof data !== 'string') return data;
  if (data.trim() === '') return undefined;
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

function lowerCaseHeaders(headers: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers && typeof headers === 'object') {
    for (const [key, value] of Object.entries(headers as Record<string, unknown>)) {
      if (value !== undefined && value !== null)
        out[key.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
    }
  }
  return out;
}

function networkCode(error: unknown): string {
  if (isAxiosError(error)) {
    const cause = (error.cause as NodeJS.ErrnoException | undefined)?.code;
    return cause ?? error.code ?? 'ERR_NETWORK';
  }
  return (error as NodeJS.ErrnoException | undefined)?.code ?? 'ERR_NETWORK';
}

function describeNetworkError(code: string, timeoutMs: number, baseUrl: string): string {
  if (code === 'ECONNABORTED' || code === 'ETIMEDOUT') return `no answer within ${Math.round(timeoutMs / 1000)} s`;
  if (code === 'ECONNREFUSED') return `connection to ${baseUrl} refused`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `${new URL(baseUrl).hostname} cannot be resolved`;
  if (code === 'ECONNRESET' || code === 'ERR_NETWORK' || code === 'EPIPE') return 'the connection was dropped';
  return `network error ${code}`;
}
