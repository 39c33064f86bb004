// Injectable faults for the fake DigitalOcean API. A fault matches requests by method and path and replaces the
// response a number of times. `when: 'after'` lets the request take effect first and then fails the response,
// which is how a create that went through but was never confirmed (a 500 or a dropped connection) looks.

export type FaultResponse =
  /** 429; retry-after only when given (DigitalOcean sends it on burst limits only). */
  | { kind: 'rate-limit'; retryAfterSeconds?: number; remaining?: number; resetInSeconds?: number }
  | { kind: 'server-error'; status?: number }
  /** The edge proxy's HTML page instead of JSON. */
  | { kind: 'html-bad-gateway'; status?: 502 | 504 }
  /** 422 "Please try again" (droplet create). */
  | { kind: 'please-try-again' }
  /** 422 "Droplet already has a pending event." */
  | { kind: 'pending-event' }
  /** The socket is destroyed without an answer. */
  | { kind: 'drop-connection' }
  /** Answer normally, but only after this long. */
  | { kind: 'delay'; ms: number }
  /**
   * The request takes effect but its answer never comes (the client times out): at once, or only when this many
   * further requests have reached the fake (a create that lands after the client gave up and looked for it).
   */
  | { kind: 'lost'; landAfterRequests?: number }
  | { kind: 'raw'; status: number; body: string; headers?: Record<string, string> };

export interface Fault {
  method?: string;
  /** Exact path (no query) or a pattern tested against it. */
  path: string | RegExp;
  /** How many matching requests it hits; default 1. Infinity for all. */
  times?: number;
  /** Let this many matching requests through untouched first (fault the 2nd create, say). Default 0. */
  skip?: number;
  /** 'before' (default): the request has no effect. 'after': it takes effect, then the response is replaced. */
  when?: 'before' | 'after';
  response: FaultResponse;
}

interface ActiveFault extends Fault {
  remaining: number;
  skipLeft: number;
  hits: number;
}

export class Faults {
  #active: ActiveFault[] = [];

  add(fault: Fault): { readonly hits: number } {
    const active: ActiveFault = { ...fault, remaining: fault.times ?? 1, skipLeft: fault.skip ?? 0, hits: 0 };
    this.#active.push(active);
    return {
      get hits() {
        return active.hits;
      },
    };
  }

  clear(): void {
    this.#active = [];
  }

  /** The fault for this request, consumed; undefined when none applies. */
  take(method: string, path: string): ActiveFault | undefined {
    const fault = this.#active.find(
      (f) =>
        f.remaining > 0 &&
        (f.method === undefined || f.method === method) &&
        (typeof f.path === 'string' ? f.path === path : f.path.test(path)),
    );
    if (!fault) return undefined;
    if (fault.skipLeft > 0) {
      fault.skipLeft--;
      return undefined;
    }
    fault.remaining--;
    fault.hits++;
    return fault;
  }
}

export const HTML_BAD_GATEWAY = `<!DOCTYPE html>
<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
`;

export const HTML_GATEWAY_TIMEOUT = `<html>
<head><title>504 Gateway Time-out</title></head>
<body bgcolor="white">
<center><h1>504 Gateway Time-out</h1></center>
</body>
</html>
`;
