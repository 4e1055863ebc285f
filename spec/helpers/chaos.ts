// A seeded chaos scenario (spec/node/chaos.review.spec.ts, and spec/fixtures/chaos-review.ts in a child process):
// one server "srv" and three clients over TCP, a Unix socket or in-memory links, driven through a random (seeded)
// interleaving of requests of every shape, streams cut short, one-way messages, broadcasts, and disruptions —
// disconnectFrom on either side, sockets destroyed abruptly, clients closed and replaced, the server restarted on
// the same address. Every request carries a unique tag that its responder echoes. What it checks is in `Report`.
// The sequence of operations is a function of the seed; socket timing is not, so a failure prints its seed and
// the transport, and the spec reruns it.
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { concat, defer, finalize, firstValueFrom, interval, map, range, take, throwError, toArray, type Subscription } from 'rxjs';
import { createLinkPair, IpcError, Node, RemoteError, type NodeMessage, type NodeSocket } from '../../src';

export type Transport = 'tcp' | 'unix' | 'link';

/** mulberry32 */
export function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Codes a call may fail with when connections come and go (besides the RemoteErrors its handler asked for); too
 * many requests: a peer whose socket stopped being read (the "stale" disruption) is owed answers until its
 * heartbeat ends it, and `maxPendingRequests` is small here.
 */
const LOSS = new Set(['ERR_IPC_TIMEOUT', 'ERR_IPC_PEER_DISCONNECTED', 'ERR_IPC_NOT_CONNECTED', 'ERR_IPC_CLOSED', 'ERR_IPC_TOO_MANY_REQUESTS']);

/** RemoteError codes of a request refused unhandled. */
const REFUSALS = new Set(['ERR_IPC_CLOSED', 'ERR_IPC_TOO_MANY_REQUESTS']);

export interface ChaosOptions {
  steps?: number;
  /** Let disruptions happen (false: traffic only). */
  disrupt?: boolean;
  /** Chance that a step is a disruption (default 0.05). */
  disruptRate?: number;
  /** Most calls started in one step (default 1). */
  burst?: number;
  /** Steps of traffic without disruption after the chaos, on connections that stay up (default 60). */
  calmSteps?: number;
  /** Deadline for every call to settle once the traffic stopped. */
  settleMs?: number;
  log?: (line: string) => void;
}

export interface Report {
  seed: number;
  transport: Transport;
  violations: string[];
  calls: number;
  outcomes: Record<string, number>;
  nodes: Node[];
}

interface Call {
  label: string;
  settled: boolean;
}

export async function runChaos(seed: number, transport: Transport, options: ChaosOptions = {}): Promise<Report> {
  const random = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const steps = options.steps ?? 160;
  const disrupt = options.disrupt ?? true;
  const violations: string[] = [];
  const fail = (what: string) => {
    if (violations.length < 50) violations.push(what);
  };
  const outcomes: Record<string, number> = {};
  const count = (key: string) => (outcomes[key] = (outcomes[key] ?? 0) + 1);
  const calls: Call[] = [];
  const allNodes: Node[] = [];
  let seq = 0;

  const unhandled = (reason: unknown) => fail(`unhandled rejection: ${String((reason as Error)?.stack ?? reason)}`);
  const uncaught = (error: Error) => fail(`uncaught exception: ${String(error?.stack ?? error)}`);
  process.on('unhandledRejection', unhandled);
  process.on('uncaughtException', uncaught);

  // ─── the server ─────────────────────────────────────────────────────────────────────────────────────
  let address: unknown[] = [];
  const unixPath = transport === 'unix' ? join(mkdtempSync(join(tmpdir(), 'ipc-chaos-')), 's.sock') : '';
  /** Streams whose source started, and those whose source was released (finally / finalize / unsubscribed). */
  let streamsStarted = 0;
  let streamsReleased = 0;
  const lateTimers = new Set<NodeJS.Timeout>();
  /** One-way messages as the server received them, per server-side socket (one per connection). */
  const received = new Map<NodeSocket, { client: string; seqs: number[] }>();

  const onServerMessage = (m: NodeMessage) => {
    if (Buffer.isBuffer(m.data)) {
      // a large one-way: u32 seq, u8 client index, then the seq's low byte repeated
      const buffer = m.data;
      const s = buffer.readUInt32BE(0);
      const c = names[buffer[4]];
      for (let i = 5; i < buffer.length; i += 997) if (buffer[i] !== (s & 0xff)) return fail(`large one-way ${s} of ${c}: corrupted at byte ${i}`);
      return onServerMessage({ data: { ow: s, c }, receptive: m.receptive, socket: m.socket } as unknown as NodeMessage);
    }
    const data = m.data as { tag?: string; kind?: string; n?: number; d?: number; ow?: number; c?: string };
    if (data.ow !== undefined) {
      if (m.receptive) fail(`one-way ${data.ow} arrived receptive`);
      let entry = received.get(m.socket);
      if (!entry) received.set(m.socket, (entry = { client: data.c!, seqs: [] }));
      const last = entry.seqs[entry.seqs.length - 1];
      if (entry.client !== data.c) fail(`one-way of ${data.c} arrived on the connection of ${entry.client}`);
      if (last !== undefined && data.ow <= last) fail(`one-way ${data.ow} of ${data.c} after ${last} on one connection (duplicate or reordered)`);
      entry.seqs.push(data.ow);
      return;
    }
    const { tag, kind, n = 3, d = 0 } = data as { tag: string; kind: string; n?: number; d?: number };
    switch (kind) {
      case 'echo':
        m.reply({ tag });
        return;
      case 'big': // a reply over PACK_LIMIT, written without a copy
        m.reply({ tag, pad: 'x'.repeat(n) });
        return;
      case 'sync': // a synchronous, endless-looking pushed stream (overflows past streamBuffer when not cancelled)
        m.stream(
          defer(() => {
            streamsStarted++;
            return range(0, 5000).pipe(
              map((i) => ({ tag, i })),
              finalize(() => streamsReleased++),
            );
          }),
        );
        return;
      case 'late': {
        const timer = setTimeout(() => {
          lateTimers.delete(timer);
          m.reply({ tag });
        }, d);
        lateTimers.add(timer);
        return;
      }
      case 'never':
        return;
      case 'kill': // answers, then ends the connection from inside the handler
        m.reply({ tag });
        if (d % 2 === 0) void server.disconnectFrom(m.from);
        else (m.socket as unknown as { connection?: { socket: { destroy(): void } } }).connection?.socket.destroy();
        return;
      case 'throw':
        throw new Error(`boom ${tag}`);
      case 'twice':
        if (!m.reply({ tag })) fail(`${tag}: first reply refused`);
        if (m.reply({ tag: `${tag}-second` })) fail(`${tag}: second reply accepted`);
        return;
      case 'iter': // a finite, pulled stream
        m.stream(
          (async function* () {
            streamsStarted++;
            try {
              for (let i = 0; i < n; i++) {
                if (i % 3 === 2) await delay(0);
                yield { tag, i };
              }
            } finally {
              streamsReleased++;
            }
          })(),
        );
        return;
      case 'inf': // an endless pulled stream: ends only when cancelled or the connection goes
        m.stream(
          (async function* () {
            streamsStarted++;
            try {
              for (let i = 0; ; i++) {
                if (i % 4 === 3) await delay(1);
                yield { tag, i };
              }
            } finally {
              streamsReleased++;
            }
          })(),
        );
        return;
      case 'obs': // an endless pushed stream
        m.stream(
          defer(() => {
            streamsStarted++;
            return interval(1).pipe(
              map((i) => ({ tag, i })),
              finalize(() => streamsReleased++),
            );
          }),
        );
        return;
      case 'err': // n values, then an error
        m.stream(
          defer(() => {
            streamsStarted++;
            return concat(
              range(0, n).pipe(map((i) => ({ tag, i }))),
              throwError(() => new Error(`stream failed ${tag}`)),
            ).pipe(finalize(() => streamsReleased++));
          }),
        );
        return;
      default:
        fail(`unknown kind ${kind}`);
    }
  };

  const makeServer = (): Node => {
    // Few slots per client: one leaked slot shows (the last requests would be refused).
    const node = new Node('srv', { heartbeatInterval: 500, maxPendingRequests: 32 });
    node.on('error', () => undefined); // handler throws are reported; none of them is a failure here
    node.on('message', onServerMessage);
    allNodes.push(node);
    return node;
  };

  let server = makeServer();
  const listen = async (node: Node) => {
    if (transport === 'link') return;
    if (transport === 'unix') node.serve('srv', unixPath);
    else node.serve('srv', ...(address.length ? address : [0, '127.0.0.1']));
    const [what] = (await Promise.race([once(node, 'listening'), once(node, 'error')])) as [unknown];
    if (what instanceof Error) throw what;
    if (transport === 'tcp') address = [(node.server!.address() as AddressInfo).port, '127.0.0.1'];
    else address = [unixPath];
  };
  await listen(server);

  // ─── the clients ────────────────────────────────────────────────────────────────────────────────────
  const names = ['c0', 'c1', 'c2'];
  const clients = new Map<string, Node>();
  /** Per client, the one-way seqs whose send resolved / was attempted. */
  const sentOk = new Map<string, number[]>(names.map((n) => [n, []]));
  /** Sockets seen by clients, kept to send to later. */
  const keptSockets: NodeSocket[] = [];

  const makeClient = (name: string): Node => {
    const node = new Node(name, { retryTime: 10, maxRetryTime: 40, heartbeatInterval: 500, requestTimeout: 3000 });
    node.on('error', () => undefined);
    node.on('message', (m) => {
      const { tag } = m.data as { tag: string };
      m.reply({ tag, name });
    });
    node.on('connect', (_name, socket) => {
      if (keptSockets.length < 20) keptSockets.push(socket);
    });
    allNodes.push(node);
    clients.set(name, node);
    return node;
  };

  const connect = (client: Node): void => {
    let connecting: Promise<unknown>;
    if (transport === 'link') {
      const [a, b] = createLinkPair();
      try {
        server.acceptVia(a);
      } catch {
        a.destroy();
        b.destroy();
        return;
      }
      connecting = client.connectVia('srv', b);
    } else connecting = client.connectTo('srv', ...address);
    track(`connect ${client.name}`, connecting, (error) => {
      const code = (error as IpcError).code;
      // A connect cut short by close/disconnectFrom, a link whose server went away while it shook hands, a server
      // that still had the stale connection of the name.
      if (!['ERR_IPC_CLOSED', 'ERR_IPC_PEER_DISCONNECTED', 'ERR_IPC_HANDSHAKE', 'ERR_IPC_NAME_IN_USE', 'ERR_IPC_ALREADY_CONNECTED', 'ERR_IPC_CONNECT'].includes(code)) {
        fail(`connect ${client.name}: unexpected ${String((error as Error)?.stack ?? error)}`);
      }
    });
  };

  /** Reconnects a client whose dialler gave up (a link, a disconnectFrom, a CLOSE that said "do not come back"). */
  const heal = (client: Node): void => {
    if (client.get('srv') === undefined && !(client as unknown as { closing: unknown }).closing) connect(client);
  };

  // ─── calls and their checks ─────────────────────────────────────────────────────────────────────────
  function track(label: string, promise: Promise<unknown>, onError: (error: unknown) => void, onValue?: (value: unknown) => void): void {
    const call: Call = { label, settled: false };
    calls.push(call);
    promise.then(
      (value) => {
        call.settled = true;
        count(`${label.split(' ')[0]}:ok`);
        onValue?.(value);
      },
      (error) => {
        call.settled = true;
        count(`${label.split(' ')[0]}:${(error as IpcError)?.code ?? 'other'}`);
        onError(error);
      },
    );
  }

  const lossOnly = (label: string) => (error: unknown) => {
    // refused unhandled: by a server that drains, or one whose slots for this client are all taken
    if (error instanceof RemoteError && REFUSALS.has(error.remoteCode!)) return;
    if (!(error instanceof IpcError) || !LOSS.has(error.code)) fail(`${label}: unexpected error ${String((error as Error)?.stack ?? error)}`);
  };
  const remoteOr = (label: string, tag: string, fragment: string) => (error: unknown) => {
    if (error instanceof RemoteError && !REFUSALS.has(error.remoteCode!)) {
      if (!error.message.includes(`${fragment} ${tag}`)) fail(`${label}: RemoteError of another request: ${error.message}`);
      return;
    }
    lossOnly(label)(error);
  };
  const sameTag = (label: string, tag: string) => (value: unknown) => {
    if ((value as { tag?: string })?.tag !== tag) fail(`${label}: got ${JSON.stringify(value)} (mixed up)`);
  };
  /** Stream values: its own tag, i = 0, 1, 2… with no gap or duplicate. */
  const inOrder = (label: string, tag: string, values: unknown[], max?: number) => {
    values.forEach((v, i) => {
      const value = v as { tag?: string; i?: number };
      if (value?.tag !== tag || value.i !== i) fail(`${label}: value ${i} is ${JSON.stringify(v)}`);
    });
    if (max !== undefined && values.length > max) fail(`${label}: ${values.length} values, more than ${max}`);
  };

  const timeouts = [0, 1, 3, 20, 200, 2000, Infinity];
  const ops: Array<(client: Node, tag: string) => void> = [
    // sendTo, answered at once, with any timeout
    (c, tag) => {
      const t = pick(timeouts);
      const label = `sendTo-echo ${tag} t=${t}`;
      track(label, c.sendTo('srv', { tag, kind: 'echo' }, { timeout: t }), lossOnly(label), sameTag(label, tag));
    },
    // answered late (maybe after the timeout)
    (c, tag) => {
      const t = pick([1, 5, 20, 2000, Infinity]);
      const label = `sendTo-late ${tag} t=${t}`;
      track(label, c.sendTo('srv', { tag, kind: 'late', d: int(0, 15) }, { timeout: t }), lossOnly(label), sameTag(label, tag));
    },
    // never answered: must time out
    (c, tag) => {
      const t = pick([0, 1, 10, 60]);
      const label = `sendTo-never ${tag} t=${t}`;
      track(label, c.sendTo('srv', { tag, kind: 'never' }, { timeout: t }), lossOnly(label), () => fail(`${label}: resolved`));
    },
    // the handler throws
    (c, tag) => {
      const label = `sendTo-throw ${tag}`;
      track(label, c.sendTo('srv', { tag, kind: 'throw' }, { timeout: pick([50, Infinity]) }), remoteOr(label, tag, 'boom'), () => fail(`${label}: resolved`));
    },
    // replied twice
    (c, tag) => {
      const label = `sendTo-twice ${tag}`;
      track(label, c.sendTo('srv', { tag, kind: 'twice' }, { timeout: pick([20, Infinity]) }), lossOnly(label), sameTag(label, tag));
    },
    // sendTo answered by a stream: its first value
    (c, tag) => {
      const label = `sendTo-stream ${tag}`;
      track(label, c.sendTo('srv', { tag, kind: pick(['iter', 'inf', 'obs']), n: int(1, 5) }, { timeout: pick([30, Infinity]) }), lossOnly(label), (v) => {
        const value = v as { tag?: string; i?: number };
        if (value?.tag !== tag || value.i !== 0) fail(`${label}: got ${JSON.stringify(v)}`);
      });
    },
    // firstValueFrom(request$)
    (c, tag) => {
      const t = pick(timeouts);
      const label = `first-request$ ${tag} t=${t}`;
      track(label, firstValueFrom(c.request$('srv', { tag, kind: pick(['echo', 'late']), d: int(0, 10) }, { timeout: t })), lossOnly(label), sameTag(label, tag));
    },
    // a finite stream, whole
    (c, tag) => {
      const n = int(0, 40);
      const label = `request$-all ${tag} n=${n}`;
      const values: unknown[] = [];
      const whole = new Promise<void>((resolve, reject) =>
        c.request$('srv', { tag, kind: 'iter', n }, { window: int(1, 8), timeout: pick([50, Infinity]) }).subscribe({
          next: (v) => values.push(v),
          error: reject,
          complete: resolve,
        }),
      );
      track(label, whole, lossOnly(label), () => {
        if (values.length !== n) fail(`${label}: completed after ${values.length} values`);
      });
      void whole.catch(() => undefined).then(() => inOrder(label, tag, values, n));
    },
    // an endless stream, take(k)
    (c, tag) => {
      const k = int(1, 20);
      const label = `request$-take ${tag} k=${k}`;
      track(
        label,
        firstValueFrom(c.request$('srv', { tag, kind: pick(['inf', 'obs']) }, { window: int(1, 16), timeout: pick([0, 1, 100, Infinity]), idleTimeout: pick([undefined, 1, 3, 500]) }).pipe(take(k), toArray())),
        lossOnly(label),
        (values) => {
          inOrder(label, tag, values as unknown[], k);
          if ((values as unknown[]).length !== k) fail(`${label}: ${(values as unknown[]).length} values`);
        },
      );
    },
    // an endless stream, unsubscribed after a while
    (c, tag) => {
      const label = `request$-unsub ${tag}`;
      const values: unknown[] = [];
      let sub: Subscription | undefined;
      const done = new Promise<void>((resolve, reject) => {
        sub = c.request$('srv', { tag, kind: pick(['inf', 'obs']) }, { window: int(1, 16), timeout: Infinity }).subscribe({ next: (v) => values.push(v), error: reject, complete: () => reject(new Error('completed')) });
        setTimeout(() => {
          sub?.unsubscribe();
          resolve();
        }, int(0, 15));
      });
      track(label, done, lossOnly(label), () => inOrder(label, tag, values));
    },
    // a stream that errors after n values
    (c, tag) => {
      const n = int(0, 6);
      const label = `request$-err ${tag} n=${n}`;
      const values: unknown[] = [];
      const done = new Promise<void>((resolve, reject) =>
        c.request$('srv', { tag, kind: 'err', n }, { timeout: pick([100, Infinity]) }).subscribe({ next: (v) => values.push(v), error: reject, complete: resolve }),
      );
      track(label, done, (error) => {
        remoteOr(label, tag, 'stream failed')(error);
        inOrder(label, tag, values, n);
        if (error instanceof RemoteError && !REFUSALS.has(error.remoteCode!) && values.length !== n) fail(`${label}: failed after ${values.length} values (${error.remoteCode}: ${error.message})`);
      }, () => fail(`${label}: completed`));
    },
    // iterate, break after k
    (c, tag) => {
      const k = int(1, 12);
      const finite = random() < 0.4;
      const n = int(0, 15);
      const label = `iterate ${tag} k=${k}${finite ? ` n=${n}` : ''}`;
      const values: unknown[] = [];
      const run = async () => {
        const it = c.iterate('srv', finite ? { tag, kind: 'iter', n } : { tag, kind: pick(['inf', 'obs']) }, { window: int(1, 8), timeout: pick([0, 1, 100, Infinity]), idleTimeout: pick([1, 3, Infinity]) });
        for await (const v of it) {
          values.push(v);
          if (values.length >= k) break;
          if (values.length % 3 === 0) await delay(0);
        }
      };
      track(label, run(), (error) => {
        lossOnly(label)(error);
        inOrder(label, tag, values);
      }, () => {
        inOrder(label, tag, values, k);
        const expected = finite ? Math.min(k, n) : k;
        if (values.length !== expected) fail(`${label}: ${values.length} values, expected ${expected}`);
      });
    },
    // a large reply
    (c, tag) => {
      const label = `sendTo-big ${tag}`;
      track(label, c.sendTo('srv', { tag, kind: 'big', n: int(9000, 40000) }, { timeout: pick([20, Infinity]) }), lossOnly(label), sameTag(label, tag));
    },
    // a synchronous pushed stream, take(k): cancelled from within its emission over a link
    (c, tag) => {
      const k = int(1, 30);
      const label = `request$-sync ${tag} k=${k}`;
      track(
        label,
        firstValueFrom(c.request$('srv', { tag, kind: 'sync' }, { window: int(1, 64), timeout: Infinity }).pipe(take(k), toArray())),
        (error) => {
          if (error instanceof RemoteError && error.remoteCode === 'ERR_IPC_STREAM_OVERFLOW') return;
          lossOnly(label)(error);
        },
        (values) => inOrder(label, tag, values as unknown[], k),
      );
    },
    // pingTo
    (c, tag) => {
      const label = `ping ${tag}`;
      track(label, c.pingTo('srv', { timeout: pick([1, 100, Infinity]) }), lossOnly(label), (rtt) => {
        if (typeof rtt !== 'number' || !(rtt >= 0)) fail(`${label}: rtt ${String(rtt)}`);
      });
    },
    // to a socket object kept from earlier (maybe stale: replaced, reconnected, closed)
    (c, tag) => {
      const label = `sendTo-socket ${tag}`;
      const socket = pick(keptSockets) ?? c.get('srv');
      if (!socket) return;
      track(label, c.sendTo(socket as never, { tag, kind: 'echo' }, { timeout: pick([50, Infinity]) }), (error) => {
        // a socket of another node altogether is a TypeError-free NOT_CONNECTED
        lossOnly(label)(error);
      }, sameTag(label, tag));
    },
    // iterate: next() called many times without waiting, then return() in the middle
    (c, tag) => {
      const calls = int(1, 6);
      const label = `iterate-concurrent ${tag} x${calls}`;
      const it = c.iterate('srv', { tag, kind: pick(['inf', 'obs', 'iter']), n: int(0, 4) }, { window: int(1, 4), timeout: pick([100, Infinity]) });
      const results: Promise<IteratorResult<unknown>>[] = [];
      for (let j = 0; j < calls; j++) results.push(it.next());
      const returned = random() < 0.5 ? it.return!() : null;
      for (let j = 0; j < 2; j++) results.push(it.next());
      const all = (async () => {
        const settled = await Promise.allSettled(results);
        let done = false;
        let i = 0;
        for (const r of settled) {
          if (r.status === 'rejected') {
            if (done) fail(`${label}: a next() after the end rejected`);
            lossOnly(label)(r.reason);
            done = true;
            continue;
          }
          if (r.value.done) done = true;
          else if (done) fail(`${label}: a value after the end: ${JSON.stringify(r.value)}`);
          else if ((r.value.value as { tag?: string; i?: number })?.tag !== tag || (r.value.value as { i?: number }).i !== i++) fail(`${label}: ${JSON.stringify(r.value)}`);
        }
        if (returned && !(await returned).done) fail(`${label}: return() not done`);
        if (!done) await it.return!();
      })();
      track(label, all, (error) => fail(`${label}: ${String(error)}`));
    },
    // the same cold request$ subscribed again from within its own value
    (c, tag) => {
      const label = `resubscribe ${tag}`;
      const source = c.request$('srv', { tag, kind: 'echo' }, { timeout: pick([50, Infinity]) });
      const both = new Promise<unknown[]>((resolve, reject) => {
        const got: unknown[] = [];
        let sub: Subscription | undefined = undefined;
        sub = source.subscribe({
          next: (v) => {
            got.push(v);
            sub?.unsubscribe();
            source.subscribe({ next: (w) => resolve([...got, w]), error: reject });
          },
          error: reject,
        });
      });
      track(label, both, lossOnly(label), (values) => (values as unknown[]).forEach((v) => sameTag(label, tag)(v)));
    },
    // large one-way messages, interleaved with small ones
    (c) => {
      const burst = int(1, 4);
      const name = c.name;
      for (let j = 0; j < burst; j++) {
        const s = ++seq;
        const label = `oneway-big ${name}#${s}`;
        const buffer = Buffer.alloc(int(8193, 30000), s & 0xff);
        buffer.writeUInt32BE(s, 0);
        buffer[4] = names.indexOf(name);
        const data = random() < 0.5 ? buffer : { ow: s, c: name };
        track(label, c.sendTo('srv', data, { receptive: false, timeout: pick([5, Infinity]) }), lossOnly(label), () => sentOk.get(name)!.push(s));
      }
    },
    // one-way messages
    (c) => {
      const burst = int(1, 6);
      for (let j = 0; j < burst; j++) {
        const s = ++seq;
        const label = `oneway ${c.name}#${s}`;
        const name = c.name;
        track(label, c.sendTo('srv', { ow: s, c: name }, { receptive: false, timeout: pick([5, Infinity]) }), lossOnly(label), () => sentOk.get(name)!.push(s));
      }
    },
  ];

  /** Calls that end no connection: all of `ops` (what ends connections is in `disruptions`). */
  const calmOps = ops;

  const serverOps: Array<(tag: string) => void> = [
    (tag) => {
      const label = `broadcast ${tag}`;
      track(label, server.broadcast({ tag }, { timeout: pick([20, 2000]) }), lossOnly(label), (replies) => {
        for (const r of replies as Array<{ tag?: string }>) if (r?.tag !== tag) fail(`${label}: reply ${JSON.stringify(r)}`);
      });
    },
    (tag) => {
      const label = `broadcastSettled ${tag}`;
      track(label, server.broadcastSettled({ tag }, { timeout: pick([20, 2000]) }), lossOnly(label), (outcomes) => {
        for (const o of outcomes as Array<{ name: string; status: string; value?: { tag?: string; name?: string }; reason?: unknown }>) {
          if (o.status === 'fulfilled' && (o.value?.tag !== tag || o.value?.name !== o.name)) fail(`${label}: ${o.name} answered ${JSON.stringify(o.value)}`);
          if (o.status === 'rejected') lossOnly(`${label} (${o.name})`)(o.reason);
        }
      });
    },
    (tag) => {
      const name = pick(names);
      const label = `server-sendTo ${name} ${tag}`;
      track(label, server.sendTo(name, { tag }, { timeout: pick([1, 50, Infinity]) }), lossOnly(label), (v) => {
        const value = v as { tag?: string; name?: string };
        if (value?.tag !== tag || value.name !== name) fail(`${label}: got ${JSON.stringify(v)}`);
      });
    },
  ];

  const connectionOf = (node: Node, name: string): { socket: { destroy(): void } } | undefined =>
    (node.get(name) as unknown as { connection?: { socket: { destroy(): void } } } | undefined)?.connection;

  const disruptions: Array<() => Promise<void> | void> = [
    // the client leaves on purpose, and comes back
    async () => {
      const c = clients.get(pick(names))!;
      await c.disconnectFrom('srv');
      heal(c);
    },
    // the server sends a client away
    async () => {
      const name = pick(names);
      await server.disconnectFrom(name);
      await delay(int(0, 5));
      heal(clients.get(name)!);
    },
    // a client's socket is destroyed abruptly
    () => {
      connectionOf(clients.get(pick(names))!, 'srv')?.socket.destroy();
    },
    // the server's side of a connection is destroyed abruptly
    () => {
      connectionOf(server, pick(names))?.socket.destroy();
    },
    // a stale connection: the server stops reading a client, whose socket then dies; the client comes back (and
    // takes its stale connection over, when the server has not noticed yet)
    () => {
      const name = pick(names);
      const stale = connectionOf(server, name) as unknown as { socket: { pause(): void; destroy(): void } } | undefined;
      stale?.socket.pause();
      connectionOf(clients.get(name)!, 'srv')?.socket.destroy();
    },
    // the client disconnects, or loses its socket, from within a stream value
    () => {
      const c = clients.get(pick(names))!;
      const k = int(0, 5);
      const how = int(0, 2);
      const tag = `${seed}:inside:${seq++}`;
      const label = `inside-next ${tag} k=${k} how=${how}`;
      const values: unknown[] = [];
      const done = new Promise<void>((resolve, reject) => {
        let sub: Subscription | undefined = undefined;
        let leave = false;
        sub = c.request$('srv', { tag, kind: pick(['inf', 'obs', 'sync']) }, { window: int(1, 8), timeout: 500 }).subscribe({
          next: (v) => {
            values.push(v);
            if (values.length !== k + 1) return;
            if (how === 0) void c.disconnectFrom('srv').then(() => setTimeout(() => heal(c), 2));
            else if (how === 1) connectionOf(c, 'srv')?.socket.destroy();
            else {
              leave = true;
              sub?.unsubscribe();
              resolve();
            }
          },
          error: reject,
          complete: () => reject(new Error('completed')),
        });
        if (leave) sub.unsubscribe(); // it left from within subscribe (an in-memory link answers synchronously)
      });
      track(label, done, (error) => {
        if (!(error instanceof RemoteError && error.remoteCode === 'ERR_IPC_STREAM_OVERFLOW')) lossOnly(label)(error);
        inOrder(label, tag, values);
      }, () => inOrder(label, tag, values));
    },
    // the server ends a connection from inside a handler, right after answering
    () => {
      const c = clients.get(pick(names))!;
      const tag = `${seed}:kill:${seq++}`;
      const label = `kill ${tag}`;
      track(label, c.sendTo('srv', { tag, kind: 'kill', d: int(0, 1) }, { timeout: pick([100, Infinity]) }), lossOnly(label), sameTag(label, tag));
      setTimeout(() => heal(c), 5);
    },
    // a client closes mid-traffic and a new node of that name takes its place
    async () => {
      const name = pick(names);
      const old = clients.get(name)!;
      const closing = old.close(random() < 0.4 ? { drain: int(1, 30) } : {});
      const replacement = makeClient(name);
      await closing;
      connect(replacement);
    },
    // the server restarts on the same address (after draining, sometimes)
    async () => {
      const old = server;
      await old.close(random() < 0.5 ? { drain: int(1, 50) } : {});
      server = makeServer();
      await listen(server);
      if (transport === 'link') for (const c of clients.values()) heal(c);
    },
  ];

  // ─── the run ────────────────────────────────────────────────────────────────────────────────────────
  for (const name of names) connect(makeClient(name));
  await Promise.all([...clients.values()].map((c) => waitFor(() => c.get('srv')?.connected === true, 5000)));

  const pendingDisruptions: Promise<void>[] = [];
  let disrupting = false;
  const drive = async (first: number, count: number, disruptive: boolean) => {
    for (let step = first; step < first + count; step++) {
      const tag = `${seed}:${step}`;
      const roll = random();
      if (disruptive && roll < (options.disruptRate ?? 0.05) && !disrupting) {
        const which = int(0, disruptions.length - 1);
        options.log?.(`step ${step}: disruption ${which}`);
        disrupting = true;
        const p = Promise.resolve()
          .then(() => disruptions[which]())
          .catch((error) => fail(`disruption ${which}: ${String((error as Error)?.stack ?? error)}`))
          .finally(() => (disrupting = false));
        pendingDisruptions.push(p);
      } else {
        const burst = int(1, options.burst ?? 1);
        for (let b = 0; b < burst; b++) {
          const t = burst === 1 ? tag : `${tag}.${b}`;
          if (random() < 0.08) pick(serverOps)(t);
          else pick(calm ? calmOps : ops)(clients.get(pick(names))!, t);
        }
      }
      if (random() < 0.3) await delay(int(0, 3));
      else if (random() < 0.5) await new Promise((resolve) => setImmediate(resolve));
      if (disruptive && step % 40 === 39) for (const c of clients.values()) heal(c);
    }
    await Promise.all(pendingDisruptions);
  };

  const settleMs = options.settleMs ?? 8000;
  const settleAll = async () => {
    try {
      await waitFor(() => calls.every((c) => c.settled), settleMs);
    } catch {
      for (const call of calls.filter((c) => !c.settled).slice(0, 10)) fail(`never settled within ${settleMs} ms: ${call.label}`);
    }
  };
  const healAll = async () => {
    try {
      // Healed again and again: a link refused while the server still held the client's stale connection (until
      // its heartbeat ends it) is not retried by itself.
      await waitFor(() => {
        for (const c of clients.values()) heal(c);
        return [...clients.values()].every((c) => c.get('srv')?.connected === true && server.get(c.name)?.connected === true);
      }, 6000);
    } catch {
      fail(`clients not connected again: ${[...clients.values()].map((c) => `${c.name}=${c.get('srv')?.connected}/${server.get(c.name)?.connected}`).join(' ')}`);
    }
  };

  // ─── chaos, then every call settles ─────────────────────────────────────────────────────────────────
  let calm = false;
  await drive(0, steps, disrupt);
  await settleAll();
  // ─── back to a healthy state, then calm traffic (the same calls, minus those that end connections): ──
  // what the chaos leaked on the connections it did not end shows below, whatever the last disruption was
  await healAll();
  calm = true;
  await drive(steps, options.calmSteps ?? 60, false);
  await settleAll();
  await healAll();

  // ─── none lost while a connection stays up: a last burst, and a request behind it ──────────────────
  await Promise.all(
    [...clients.values()].map(async (c) => {
      try {
        for (let j = 0; j < 20; j++) {
          const s = ++seq;
          await c.sendTo('srv', { ow: s, c: c.name }, { receptive: false });
          sentOk.get(c.name)!.push(s);
        }
        const tag = `${seed}:barrier:${c.name}`;
        const reply = (await c.sendTo('srv', { tag, kind: 'echo' }, { timeout: 3000 })) as { tag: string };
        if (reply.tag !== tag) fail(`barrier of ${c.name}: ${JSON.stringify(reply)}`);
      } catch (error) {
        fail(`final burst of ${c.name}: ${String((error as Error)?.stack ?? error)}`);
      }
    }),
  );
  for (const name of names) {
    const socket = server.get(name);
    const entry = socket && received.get(socket);
    if (!entry || entry.seqs.length === 0) {
      fail(`${name}: no one-way received on its live connection`);
      continue;
    }
    const got = new Set(entry.seqs);
    const first = entry.seqs[0];
    const lost = sentOk.get(name)!.filter((s) => s >= first && !got.has(s));
    if (lost.length > 0) fail(`${name}: one-way sends that resolved on a connection still up never arrived: ${lost.slice(0, 10).join(',')} (first on it: ${first})`);
  }

  // ─── nothing left pending ──────────────────────────────────────────────────────────────────────────
  const live = () => [server, ...clients.values()];
  type Conn = { registry: { size: number }; inbound: { size: number; streaming: number } };
  const connections = (node: Node): Array<[string, Conn]> =>
    (node as unknown as { sockets(): NodeSocket[] })
      .sockets()
      .flatMap((s) => {
        const conn = (s as unknown as { connection?: Conn }).connection;
        return conn ? [[`${node.name}->${s.name}`, conn] as [string, Conn]] : [];
      });
  const leftovers = () =>
    live().flatMap((node) => connections(node).filter(([, c]) => c.registry.size > 0 || c.inbound.size > 0).map(([k, c]) => `${k}: registry ${c.registry.size}, inbound ${c.inbound.size} (streaming ${c.inbound.streaming})`));
  try {
    await waitFor(() => leftovers().length === 0 && streamsStarted === streamsReleased, 3000);
  } catch {
    for (const left of leftovers()) fail(`left pending: ${left}`);
    if (streamsStarted !== streamsReleased) fail(`stream sources started ${streamsStarted}, released ${streamsReleased}`);
  }
  for (const node of live()) {
    const stats = node.stats();
    if (stats.pendingRequests !== 0 || stats.openStreams !== 0) fail(`${node.name}.stats(): pendingRequests ${stats.pendingRequests}, openStreams ${stats.openStreams}`);
    const lanes = [...((node as unknown as { timeouts: { lanes: Map<number, { head: unknown }> } }).timeouts.lanes.values())];
    if (lanes.some((lane) => lane.head !== null)) fail(`${node.name}: timeout queue still holds entries`);
  }

  // ─── close: everything ends ─────────────────────────────────────────────────────────────────────────
  for (const timer of lateTimers) clearTimeout(timer);
  const closing = Promise.all(allNodes.map((n) => n.close()));
  let guard: NodeJS.Timeout | undefined;
  const closed = await Promise.race([closing.then(() => true), new Promise<boolean>((resolve) => (guard = setTimeout(resolve, 5000, false)))]);
  clearTimeout(guard);
  if (!closed) fail('close() did not resolve within 5 s');
  await delay(20); // let late rejections surface
  process.off('unhandledRejection', unhandled);
  process.off('uncaughtException', uncaught);
  return { seed, transport, violations, calls: calls.length, outcomes, nodes: allNodes };
}

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await delay(5);
  }
}
