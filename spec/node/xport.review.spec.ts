// Differential matrix across transports: the same scenario over TCP, Unix, TLS, the in-memory link and NATS, the
// events and stream emissions of both sides, the errors (class, code, message with addresses blanked) and the
// stats afterwards compared against TCP. The README: "the rest of the API … is unchanged".
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { connect as netConnect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { createLinkPair, type Node, type NodeOptions } from '../../src';
import { natsTransport } from '../../src/nats';
import { cleanUp, exitWithin, ROOT, spawnNode, type Child } from '../helpers/child';
import { bytesAsHex, delay, freePort, node, socketPath, until } from '../helpers/net';
import { isCI, NATS_MISSING, natsAvailable, startNatsServer, stopAllNatsServers, type NatsServer } from '../helpers/natsServer';

jest.setTimeout(60_000);
afterEach(cleanUp);

type Kind = 'tcp' | 'unix' | 'tls' | 'link' | 'nats';
const hasNats = natsAvailable();
if (!hasNats && !isCI()) process.stderr.write(`xport.review: NATS column skipped: ${NATS_MISSING}\n`);
const KINDS: Kind[] = hasNats || isCI() ? ['tcp', 'unix', 'tls', 'link', 'nats'] : ['tcp', 'unix', 'tls', 'link'];

let nats: NatsServer | undefined;
beforeAll(async () => {
  if (KINDS.includes('nats')) nats = await startNatsServer();
});
afterAll(() => stopAllNatsServers());

const tlsDir = join(__dirname, '..', 'fixtures', 'tls');
const pem = (file: string) => readFileSync(join(tlsDir, file));
const tlsServer = { key: pem('server-key.pem'), cert: pem('server-cert.pem'), ca: pem('ca.pem') };
const tlsClient = { ca: pem('ca.pem') };

type N = Node & { errors: Error[]; log: string[] };

/** A node for `kind`, every event and stream emission logged in order. */
function mk(kind: Kind, name: string, options: NodeOptions = {}, serving = false): N {
  const extra: NodeOptions = { heartbeatInterval: 0, ...options };
  if (kind === 'tls') extra.tls = serving ? tlsServer : tlsClient;
  if (kind === 'nats') extra.transport = natsTransport({ servers: nats!.url });
  const n = Object.assign(node(name, extra), { log: [] as string[] });
  n.on('connection', (peer) => n.log.push(`connection ${peer}`));
  n.on('connect', (peer) => n.log.push(`connect ${peer}`));
  n.on('disconnect', (peer) => n.log.push(`disconnect ${peer}`));
  n.on('socketClose', (peer) => n.log.push(`socketClose ${peer}`));
  n.on('error', (e) => n.log.push(`error ${describe_(e)}`));
  n.on('close', () => n.log.push('close'));
  n.connections$.subscribe({ next: (s) => n.log.push(`connections$ ${s.name}`), complete: () => n.log.push('connections$ complete') });
  n.disconnections$.subscribe({ next: (s) => n.log.push(`disconnections$ ${s.name}`), complete: () => n.log.push('disconnections$ complete') });
  return n;
}

/** Where a served hub is: a port, a path, or nothing (NATS, link). */
type Address = unknown[];

async function serve(kind: Kind, hub: Node): Promise<Address> {
  if (kind === 'link') return [];
  if (kind === 'nats') {
    hub.serve(hub.name);
    await once(hub, 'listening');
    return [];
  }
  if (kind === 'unix') {
    const path = socketPath();
    hub.serve(hub.name, path);
    await once(hub, 'listening');
    return [path];
  }
  hub.serve(hub.name, 0, '127.0.0.1');
  await once(hub, 'listening');
  return [(hub.server!.address() as AddressInfo).port, '127.0.0.1'];
}

async function join_(kind: Kind, hub: Node, leaf: Node, address: Address) {
  if (kind === 'link') {
    const [a, b] = createLinkPair();
    hub.acceptVia(a);
    return leaf.connectVia(hub.name, b);
  }
  return (leaf.connectTo as (name: string, ...args: unknown[]) => ReturnType<Node['connectTo']>)(hub.name, ...address);
}

/** hub serving, leaf connected to it, both logs cleared once both sides saw the connection. */
async function pair(kind: Kind, hubOptions: NodeOptions = {}, leafOptions: NodeOptions = {}) {
  const hub = mk(kind, 'hub', hubOptions, true);
  const leaf = mk(kind, 'leaf', leafOptions);
  const address = await serve(kind, hub);
  await join_(kind, hub, leaf, address);
  await until(() => hub.get('leaf') !== undefined, 5000, 'the hub sees the leaf');
  return { hub, leaf, address };
}

/** An error as compared: class, code, remote fields, message with addresses, paths and ids blanked. */
function describe_(error: unknown): string {
  const e = error as Error & { code?: string; remoteCode?: string; remoteName?: string };
  const message = String(e.message)
    .replace(/\/[^\s"]*ipc\.sock/g, '<where>')
    .replace(/127\.0\.0\.1:\d+|nats:[\w.]+/g, '<where>')
    .replace(/\b[0-9a-f]{16}\b/g, '<id>')
    // After a client gave up, ERR_IPC_NOT_CONNECTED adds why: that give-up, whose error differs by transport (below;
    // a link's is its closing), and a NATS fleet never gives up (it searches on). Compared without it.
    .replace(/: its connection ended for good \(.*\)$/, '');
  // A client giving up: over NATS it searched for instances ("No instance of … could be reached after 1 attempt":
  // after a loss, a fleet searches one round even with maxRetries 0), over a socket it dialled ("Could not connect
  // to … after 1 attempt"), or lost its connection and, with maxRetries 0, made no redial ("Lost the connection to
  // … and made no attempt to reconnect"): same class and code, each count true to what that client did.
  const gaveUp = e.code === 'ERR_IPC_CONNECT' ? '<gave up>' : message;
  // ERR_IPC_NOT_CONNECTED says the same over NATS, where connectTo searches, as over a socket that is reconnecting:
  // "its connection is not up (connecting or reconnecting: await connectTo before sending)" — compared as is.
  return [e.constructor.name, e.code, e.remoteName, e.remoteCode, gaveUp].filter((x) => x !== undefined).join(' | ');
}

/**
 * A link (`connectVia`) never reconnects (README: "No reconnection"), so where a socket client with `maxRetries: 0`
 * tries once more and gives up with ERR_IPC_CONNECT, a link gives up at once with ERR_IPC_PEER_DISCONNECTED "The
 * link to … closed": a documented difference, blanked in the link's client log.
 */
function linkGaveUp(log: string[]): string[] {
  return log.map((l) => (l === 'error PeerDisconnectedError | ERR_IPC_PEER_DISCONNECTED | The link to "hub" closed' ? 'error ConnectError | ERR_IPC_CONNECT | <gave up>' : l));
}

const outcome = (p: Promise<unknown>) => p.then((v) => ({ value: v }), (e: unknown) => ({ error: describe_(e) }));

/** Waits until `n` gave up reconnecting (an 'error' logged; a NATS client searches one round, >= 250 ms, first). */
async function gaveUp(n: N): Promise<void> {
  await until(() => n.log.some((l) => l.startsWith('error')), 3000, 'the client gave up').catch(() => undefined);
}

/** What stats() shows of the slots (every transport must free them). */
function slots(n: Node) {
  const s = n.stats();
  return { pendingRequests: s.pendingRequests, openStreams: s.openStreams, handshaking: s.handshaking, peers: Object.keys(s.peers).sort() };
}

/** Runs `scenario` on every kind (or those listed) and expects every outcome to equal TCP's. */
async function differential(scenario: (kind: Kind) => Promise<unknown>, kinds: Kind[] = KINDS): Promise<Record<string, unknown>> {
  const results: Record<string, unknown> = {};
  for (const kind of kinds) {
    try {
      results[kind] = await scenario(kind);
    } catch (e) {
      results[kind] = `threw: ${(e as Error).message}`;
    }
    await cleanUp();
  }
  if (process.env.XPORT_DUMP) require('node:fs').appendFileSync(process.env.XPORT_DUMP, JSON.stringify(results, (_, v) => (typeof v === 'bigint' ? `${v}n` : v), 1) + '\n');
  if (results.link && typeof results.link === 'object' && 'leafLog' in results.link) {
    const r = results.link as { leafLog: string[] };
    r.leafLog = linkGaveUp(r.leafLog);
  }
  const expected = Object.fromEntries(kinds.map((k) => [k, results.tcp]));
  expect(results).toEqual(expected);
  return results;
}

/**
 * The hub streams to the leaf (two values in) and each side awaits an answer that never comes: the state the close
 * and destroy scenarios start from.
 */
async function inFlight(hub: Awaited<ReturnType<typeof pair>>['hub'], leaf: Awaited<ReturnType<typeof pair>>['leaf']) {
  hub.on('message', (m) => {
    if (m.data === 'ticks') m.stream((async function* () { for (let i = 0; ; i++) { await delay(5); yield i; } })());
  });
  const values: unknown[] = [];
  let end = '';
  leaf.request$('hub', 'ticks', { timeout: 10_000 }).subscribe({ next: (v) => values.push(v), error: (e) => (end = describe_(e)), complete: () => (end = 'complete') });
  await until(() => values.length >= 2);
  const fromLeaf = outcome(leaf.sendTo('hub', 'hang', { timeout: 10_000 }));
  const fromHub = outcome(hub.sendTo('leaf', 'hang', { timeout: 10_000 }));
  await until(() => hub.stats().openStreams === 1 && hub.stats().pendingRequests === 1);
  return { fromLeaf, fromHub, streamEnd: () => end };
}

describe('the same scenario over every transport', () => {
  it('connect, a request each way, the leaf closes: the same events on both sides, slots freed', async () => {
    await differential(async (kind) => {
      const { hub, leaf } = await pair(kind);
      hub.on('message', (m) => m.reply(`hub:${m.data}`));
      leaf.on('message', (m) => m.reply(`leaf:${m.data}`));
      const replies = [await leaf.sendTo('hub', 'a'), await hub.sendTo('leaf', 'b')];
      await until(() => leaf.stats().pendingRequests === 0 && hub.stats().pendingRequests === 0);
      const live = { hub: slots(hub), leaf: slots(leaf) };
      await leaf.close();
      await until(() => hub.log.includes('socketClose leaf'), 5000, 'socketClose');
      return { replies, live, after: slots(hub), hubLog: hub.log, leafLog: leaf.log };
    });
  });

  it.each(['leaf', 'hub'] as const)('the %s closes with requests in flight both ways and a stream open', async (closing) => {
    await differential(async (kind) => {
      const { hub, leaf } = await pair(kind);
      const { fromLeaf, fromHub, streamEnd } = await inFlight(hub, leaf);
      const logs = () => ({ hubLog: hub.log, leafLog: leaf.log });
      if (closing === 'leaf') {
        await leaf.close();
        await until(() => hub.log.includes('socketClose leaf'), 5000, 'socketClose');
        return { fromLeaf: await fromLeaf, fromHub: await fromHub, streamEnd: streamEnd(), after: slots(hub), ...logs() };
      }
      await hub.close();
      await until(() => leaf.log.includes('disconnect hub'), 5000, 'disconnect');
      await gaveUp(leaf);
      return { fromLeaf: await fromLeaf, fromHub: await fromHub, streamEnd: streamEnd(), after: slots(leaf), ...logs(), notConnected: await outcome(leaf.sendTo('hub', 'x')) };
    });
  });

  it('the underlying socket destroyed mid-request and mid-stream', async () => {
    await differential(async (kind) => {
      const { hub, leaf } = await pair(kind);
      const { fromLeaf, fromHub, streamEnd } = await inFlight(hub, leaf);
      (leaf.get('hub') as unknown as { connection: { socket: Socket } }).connection.socket.destroy();
      await until(() => hub.log.includes('socketClose leaf') && leaf.log.includes('disconnect hub'), 5000, 'both sides noticed');
      await until(() => hub.stats().openStreams === 0, 2000, 'the stream released');
      await gaveUp(leaf);
      return { fromLeaf: await fromLeaf, fromHub: await fromHub, streamEnd: streamEnd(), hub: slots(hub), leaf: slots(leaf), hubLog: hub.log, leafLog: leaf.log };
    }, KINDS.filter((k) => k !== 'nats'));
  });

  it('a request timeout: the same IpcTimeoutError on every transport, no slot left', async () => {
    await differential(async (kind) => {
      const { hub, leaf } = await pair(kind);
      const sendTo = await outcome(leaf.sendTo('hub', 'silent', { timeout: 50 }));
      const request$ = await outcome(new Promise((resolve, reject) => leaf.request$('hub', 'silent', { timeout: 50 }).subscribe({ next: resolve, error: reject })));
      const it = await outcome(leaf.iterate('hub', 'silent', { timeout: 50 }).next());
      const ping = await outcome(leaf.pingTo('hub', { timeout: 1000 }).then(() => 'pong'));
      await until(() => hub.stats().pendingRequests === 0 && leaf.stats().pendingRequests === 0);
      return { sendTo, request$, it, ping, hub: slots(hub), leaf: slots(leaf), hubLog: hub.log, leafLog: leaf.log };
    });
  });

  it('values arrive unchanged', async () => {
    const err = Object.assign(new RangeError('bad'), { code: 'E_BAD', extra: [1, { x: null }] });
    const values: unknown[] = [
      -0, NaN, Infinity, '', '\uD800', 'é€😀', null, undefined, true, 0n, 2n ** 70n, [], {}, [undefined, , null], // eslint-disable-line no-sparse-arrays
      { a: undefined, b: [1, 'x'], ['__proto__']: 1 }, Buffer.alloc(0), Buffer.from([0, 255]), Buffer.alloc(70_000, 7), new Uint8Array([1, 2]),
      new Date(0), new Map([[1, { a: 1 }]]), new Set(['x']), /re/gi, Object.assign([1, 2], { extra: 'x' }), 'x'.repeat(100_000),
    ];
    // Bytes compared as their class and hex (3.5 of this test's 3.9 s went to toEqual on the 70,000-byte ones).
    let overTcp: unknown[] = [];
    await differential(async (kind) => {
      const { hub, leaf } = await pair(kind);
      hub.on('message', (m) => m.reply(m.data));
      leaf.on('message', (m) => m.reply(m.data));
      const back: unknown[] = [];
      for (const v of values) back.push(await leaf.sendTo('hub', v), await hub.sendTo('leaf', v));
      if (kind === 'tcp') overTcp = back;
      const error = await hub.sendTo('leaf', err);
      const e = error as typeof err;
      return { back: back.map(bytesAsHex), error: { name: e.constructor.name, message: e.message, code: e.code, extra: e.extra, stackKept: e.stack === err.stack } };
    });
    values.forEach((v, i) => {
      expect(bytesAsHex(overTcp[2 * i])).toEqual(bytesAsHex(v));
      expect(Object.is(overTcp[2 * i], -0)).toBe(Object.is(v, -0));
    });
  });

  it('one-way messages keep their order, mixed with requests, both ways', async () => {
    await differential(async (kind) => {
      const { hub, leaf } = await pair(kind);
      const seen: Record<string, unknown[]> = { hub: [], leaf: [] };
      hub.on('message', (m) => (seen.hub.push(m.data), m.receptive && m.reply(null)));
      leaf.on('message', (m) => (seen.leaf.push(m.data), m.receptive && m.reply(null)));
      const sends: Promise<unknown>[] = [];
      for (let i = 0; i < 500; i++) {
        sends.push(leaf.sendTo('hub', i, { receptive: i % 7 === 0 }), hub.sendTo('leaf', i, { receptive: i % 5 === 0 }));
        if (i % 100 === 0) await delay(1);
      }
      await Promise.all(sends);
      await until(() => seen.hub.length === 500 && seen.leaf.length === 500);
      const inOrder = (xs: unknown[]) => xs.every((x, i) => x === i);
      return { hub: inOrder(seen.hub), leaf: inOrder(seen.leaf), hubSlots: slots(hub), leafSlots: slots(leaf) };
    });
  });

  it('broadcast reaches each peer once, replies in peer order; broadcastSettled alike', async () => {
    await differential(async (kind) => {
      const hub = mk(kind, 'hub', {}, true);
      const address = await serve(kind, hub);
      const got: Record<string, unknown[]> = { a: [], b: [] };
      for (const name of ['a', 'b']) {
        const leaf = mk(kind, name);
        leaf.on('message', (m) => (got[name].push(m.data), m.reply(`${name}:${m.data}`)));
        await join_(kind, hub, leaf, address);
      }
      await until(() => hub.get('a') !== undefined && hub.get('b') !== undefined);
      const replies = await hub.broadcast('x');
      const oneWay = await hub.broadcast('y', { receptive: false });
      const settled = await hub.broadcastSettled('z', { filter: /^b$/ });
      await until(() => got.a.length === 2 && got.b.length === 3);
      return { replies, oneWay, settled, got, hubLog: hub.log.slice() }; // (the order in which close() ends its peers is not a contract)
    });
  });

  it('a reply or send over the peer\'s maxFrameSize: the same local error, the connection stays up', async () => {
    await differential(async (kind) => {
      const { hub, leaf } = await pair(kind, { maxFrameSize: 4096 }, { maxFrameSize: 4096 });
      hub.on('message', (m) => {
        try {
          m.reply(m.data === 'big' ? Buffer.alloc(10_000) : 'ok');
        } catch (e) {
          hub.log.push(`reply threw ${describe_(e)}`);
        }
      });
      const send = await outcome(leaf.sendTo('hub', Buffer.alloc(10_000)));
      const reply = await outcome(leaf.sendTo('hub', 'big'));
      const after = await outcome(leaf.sendTo('hub', 'small'));
      return { send, reply, after, hub: slots(hub), leaf: slots(leaf), hubLog: hub.log, leafLog: leaf.log };
    });
  });

  it('wrong auth.secret: the same rejection and the same hub error', async () => {
    await differential(async (kind) => {
      const hub = mk(kind, 'hub', { auth: { secret: 'right secret of the hub' } }, true);
      const leaf = mk(kind, 'leaf', { auth: { secret: 'wrong secret' } });
      const address = await serve(kind, hub);
      const connect = await outcome(join_(kind, hub, leaf, address));
      await until(() => hub.log.some((l) => l.startsWith('error')), 5000, 'the hub reports it');
      await delay(50);
      return { connect, hub: slots(hub), leaf: slots(leaf), hubLog: hub.log, leafLog: leaf.log };
    });
  });

  it('a name in use: the newcomer refused with ERR_IPC_NAME_IN_USE (NATS admits clients of one name: documented)', async () => {
    await differential(async (kind) => {
      const { hub, address } = await pair(kind);
      const twin = mk(kind, 'leaf');
      const connect = await outcome(join_(kind, hub, twin, address));
      await delay(50);
      return { connect, hub: slots(hub), hubLog: hub.log, twinLog: twin.log };
    }, KINDS.filter((k) => k !== 'nats'));
  });

  it('a peer silent in the handshake: the same hub error after handshakeTimeout, the slot freed', async () => {
    await differential(async (kind) => {
      const hub = mk(kind, 'hub', { handshakeTimeout: 100 }, true);
      const address = await serve(kind, hub);
      let closed = false;
      if (kind === 'link') {
        const [a, b] = createLinkPair();
        b.on('close', () => (closed = true));
        b.on('end', () => (closed = true));
        b.resume();
        hub.acceptVia(a);
      } else {
        const socket: Socket =
          kind === 'tls'
            ? tlsConnect({ port: address[0] as number, host: '127.0.0.1', ...tlsClient })
            : kind === 'unix'
              ? netConnect(address[0] as string)
              : netConnect(address[0] as number, '127.0.0.1');
        socket.on('error', () => undefined);
        socket.on('close', () => (closed = true));
        socket.resume();
      }
      await until(() => hub.stats().handshaking === 1, 5000, 'handshaking');
      await until(() => closed && hub.stats().handshaking === 0, 5000, 'the hub hung up');
      return { hub: slots(hub), hubLog: hub.log };
    }, KINDS.filter((k) => k !== 'nats'));
  });

  it('close({ drain }) with requests in flight: they finish, new ones fail, the same events', async () => {
    await differential(async (kind) => {
      const { hub, leaf, address } = await pair(kind);
      hub.on('message', (m) => void delay(400).then(() => m.reply(`done ${m.data}`)));
      const inFlight = leaf.sendTo('hub', 'a', { timeout: 5000 });
      await until(() => leaf.stats().pendingRequests === 1);
      await delay(10);
      const closing = hub.close({ drain: 3000 });
      await delay(20);
      const during = await outcome(leaf.sendTo('hub', 'b', { timeout: 1000 }));
      const hubSend = await outcome(hub.sendTo('leaf', 'c', { timeout: 1000 }));
      // A newcomer while the hub drains: a socket server stopped listening first; a NATS instance stops answering
      // discovery (it answered, and opened links, until its session closed after the drain). A link has no server.
      const late = kind === 'link' ? { error: 'ConnectError | ERR_IPC_CONNECT | <gave up>' } : await outcome(join_(kind, hub, mk(kind, 'late'), address));
      const first = await outcome(inFlight);
      await closing;
      await until(() => leaf.log.includes('disconnect hub'), 5000, 'disconnect');
      await gaveUp(leaf);
      return { first, during, hubSend, late, leaf: slots(leaf), hubLog: hub.log, leafLog: leaf.log };
    });
  });

  it('disconnectFrom: both ways, pending requests rejected, no reconnection', async () => {
    await differential(async (kind) => {
      const out: Record<string, unknown> = {};
      for (const who of ['hub', 'leaf'] as const) {
        const { hub, leaf } = await pair(kind, {}, { maxRetries: Infinity, retryTime: 10 });
        const fromLeaf = outcome(leaf.sendTo('hub', 'hang', { timeout: 5000 }));
        const fromHub = outcome(hub.sendTo('leaf', 'hang', { timeout: 5000 }));
        await until(() => hub.stats().pendingRequests === 1 && leaf.stats().pendingRequests === 1);
        const result = who === 'hub' ? await hub.disconnectFrom('leaf') : await leaf.disconnectFrom('hub');
        await until(() => hub.log.includes('socketClose leaf') && leaf.log.includes('disconnect hub'), 5000, 'both sides');
        // Longer than a NATS search round (250 ms), or than 10 retry periods (10 ms) of a socket or link client: a
        // client told not to come back has not come back by then.
        await delay(kind === 'nats' ? 800 : 100);
        // Told not to come back, a socket or link client gives up ('error' ERR_IPC_PEER_DISCONNECTED "… for good");
        // a NATS client never links to that instance again but searches on for the service's other instances
        // (README, "Over NATS"): the one documented difference, checked here and left out of the comparison.
        const forGood = 'error PeerDisconnectedError | ERR_IPC_PEER_DISCONNECTED | "hub" closed the connection for good';
        if (who === 'hub') expect({ kind, forGood: leaf.log.includes(forGood) }).toEqual({ kind, forGood: kind !== 'nats' });
        const leafLog = leaf.log.filter((l) => l !== forGood);
        out[who] = { result, fromLeaf: await fromLeaf, fromHub: await fromHub, again: await (who === 'hub' ? hub.disconnectFrom('leaf') : leaf.disconnectFrom('hub')), hub: slots(hub), leaf: slots(leaf), leafGet: leaf.get('hub') === undefined, hubLog: hub.log.slice(), leafLog };
        await cleanUp();
      }
      return out;
    });
  });
});

describe('a peer process over every transport', () => {
  const KILLABLE = KINDS.filter((k) => k !== 'link');

  function where(kind: Kind, port: number, path: string): unknown {
    return kind === 'nats' ? nats!.url : kind === 'unix' ? path : port;
  }

  function spawnHub(kind: Kind, at: unknown): Child {
    return spawnNode([join(ROOT, 'spec', 'fixtures', 'xport-review.js'), 'server'], { XPORT: JSON.stringify({ kind, where: at, options: { heartbeatInterval: 100 } }) });
  }

  it('SIGKILL of the serving process mid-request and mid-stream, then a restart: the client finds it again', async () => {
    await differential(async (kind) => {
      const at = where(kind, await freePort(), socketPath());
      let child = spawnHub(kind, at);
      await child.waitFor('listening');
      const leaf = mk(kind, 'leaf', { heartbeatInterval: 100, maxRetries: Infinity, retryTime: 20, maxRetryTime: 100 });
      const args = kind === 'nats' ? [] : kind === 'unix' ? [at] : [at, '127.0.0.1'];
      await (leaf.connectTo as (name: string, ...a: unknown[]) => Promise<unknown>)('hub', ...args);
      const values: unknown[] = [];
      let streamEnd = '';
      leaf.request$('hub', 'ticks', { timeout: 10_000 }).subscribe({ next: (v) => values.push(v), error: (e) => (streamEnd = describe_(e)), complete: () => (streamEnd = 'complete') });
      await until(() => values.length >= 2);
      const pending = outcome(leaf.sendTo('hub', 'hang', { timeout: 10_000 }));
      child.process.kill('SIGKILL');
      await child.exited;
      const rejected = await pending;
      await until(() => leaf.log.includes('disconnect hub'), 5000, 'disconnect');
      const whileDown = await outcome(leaf.sendTo('hub', 'x'));
      child = spawnHub(kind, at);
      await child.waitFor('listening');
      await until(() => leaf.log.filter((l) => l === 'connect hub').length === 2 && leaf.get('hub')?.connected === true, 10_000, 'reconnected');
      const after = await outcome(leaf.sendTo('hub', 'again'));
      return { rejected, streamEnd, whileDown, after, leaf: slots(leaf), leafLog: leaf.log.filter((l) => !l.startsWith('error')) };
    }, KILLABLE);
  });

  it('after close() of a hub and a leaf in one process, with a stream and a request in flight, the process exits by itself', async () => {
    await differential(async (kind) => {
      const child = spawnNode([join(ROOT, 'spec', 'fixtures', 'xport-review.js'), 'both-close'], { XPORT: JSON.stringify({ kind, where: where(kind, 0, socketPath()) }) });
      const exit = await exitWithin(child, 10_000);
      return { exit, output: child.output().trim().split('\n') };
    }, KILLABLE);
  });
});
