import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions, Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { ClosedError, ConnectError, ErrorCode, IpcError, PeerDisconnectedError } from '../errors';
import { MAX_TIMER_DELAY } from '../limits';
import type { Discovery, NodeTransport, TransportNode, TransportSession } from '../node/NodeTransport';
import { NatsLink } from './NatsLink';

/** Options of {@link natsTransport}. */
export type NatsTransportOptions = (
  | /**
     * nats.js connection options (`servers`, `user`/`pass`, `token`, `authenticator`, `tls`…): the transport connects
     * on first use, and closes when the last node that used it (served or connected) closes. Not `noEcho: true` (a
     * `TypeError`: it would hide the nodes sharing the connection from each other).
     */ (Omit<ConnectionOptions, 'noEcho'> & { noEcho?: false })
  | ({
      /** A connection you opened (`connect()` of `@nats-io/transport-node`): used as it is, never closed by us. */
      connection: NatsConnection;
    } & {
      /** Connection options beside `connection` would be ignored: a `TypeError`; give them to `connect()`. */
      [K in keyof ConnectionOptions]?: undefined;
    })
) & {
  /**
   * First token(s) of every subject the nodes use: `<prefix>.discover.<service>`, `<prefix>.announce.<service>`,
   * `<prefix>.open.<instance>`, `<prefix>.link.<id>`, `<prefix>.found.<id>`. Default `'ipc'`. Give each fleet its
   * own prefix to keep fleets that share a NATS cluster apart. At most 256 bytes (UTF-8).
   */
  prefix?: string;
  /** Most instances of one service a client links to (the first found). Default `Infinity`. */
  maxInstances?: number;
  /** How often a client asks who serves its services, in ms (new instances also announce themselves). Default 2 000. */
  discoveryInterval?: number;
  /**
   * Time allowed for an instance to answer a link request, in ms. Default 5 000. `close()` waits for the answers to
   * the requests out (a round trip; at most 1 s), to tell those instances the link is off.
   */
  openTimeout?: number;
};

/** The nats.js client package, loaded when a transport is first created. */
type NatsModule = typeof import('@nats-io/transport-node');
const CLIENT_PACKAGE = '@nats-io/transport-node';

/**
 * A subject token: no `.`, `*`, `>`, whitespace or control characters, and no lone surrogate (the `u` flag keeps a
 * pair, one code point, out of that range): subjects are UTF-8, where every lone surrogate reads as U+FFFD, so the
 * prefixes "ipc\uD800" and "ipc\uDC00" were one fleet's subjects.
 */
const TOKEN = /^[^.*>\s\u0000-\u001f\u007f\uD800-\uDFFF]+$/u;
/**
 * Most UTF-8 bytes of a prefix. A subject is at most two prefixes, a 256-character name (768 bytes) and a few
 * tokens, well within the server's 4 KiB protocol line (`max_control_line`): a longer SUB makes the server drop the
 * connection, and nats.js subscribes again on every reconnect.
 */
const MAX_PREFIX_BYTES = 256;
/** Longest close() waits for the answers to its link requests out, in ms (see NatsSession#close). */
const CLOSE_GRACE = 1000;

/**
 * A transport that carries a node's links over NATS (`new Node(name, { transport: natsTransport(…) })`): names are
 * addresses, a service may run as many instances as you like on any host of the cluster, and each client links to
 * every live one of them. Our frames travel unchanged, numbered, over a pair of subjects per link.
 *
 * Needs the NATS client: `npm install @nats-io/transport-node` (3.x).
 * @throws IpcError `ERR_IPC_TRANSPORT` when that package is not installed; TypeError on bad options.
 */
export function natsTransport(options: NatsTransportOptions): NodeTransport {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`natsTransport(options): options must be an object (nats.js connection options, or { connection }), received ${describe(options)}`);
  }
  const prefix = options.prefix === undefined ? 'ipc' : options.prefix;
  if (typeof prefix !== 'string' || !prefix.split('.').every((token) => TOKEN.test(token)) || Buffer.byteLength(prefix) > MAX_PREFIX_BYTES) {
    throw new TypeError(
      `natsTransport(options): options.prefix must be subject tokens separated by dots (no '*', '>' or whitespace), at most ${MAX_PREFIX_BYTES} bytes, received ${describe(prefix).slice(0, 100)}`,
    );
  }
  if ('connection' in options) {
    const nc = options.connection as Partial<NatsConnection> | null;
    if (nc === null || typeof nc !== 'object' || typeof nc.subscribe !== 'function' || typeof nc.publish !== 'function' || typeof nc.status !== 'function') {
      throw new TypeError(`natsTransport(options): options.connection must be a NATS connection (connect() of ${CLIENT_PACKAGE}), received ${describe(nc)}`);
    }
    // Connection options beside a connection would be ignored: say so rather than run without them (say, `user`).
    const ignored = Object.keys(options).filter((key) => !OWN_OPTIONS.has(key) && key !== 'connection' && (options as Record<string, unknown>)[key] !== undefined);
    if (ignored.length > 0) {
      throw new TypeError(`natsTransport(options): ${ignored.join(', ')} cannot go with options.connection (it is connected already): give them to connect()`);
    }
  }
  const servers: unknown = 'connection' in options ? undefined : options.servers;
  if (servers !== undefined && typeof servers !== 'string' && !(Array.isArray(servers) && servers.every((url) => typeof url === 'string'))) {
    throw new TypeError(`natsTransport(options): options.servers must be a URL or an array of URLs (strings), received ${describe(servers)}`);
  }
  // Nodes sharing a connection (of one transport, or the user's) reach each other through the server's echo.
  const connectOptions = 'connection' in options ? (options.connection as { options?: ConnectionOptions }).options : options;
  if (connectOptions?.noEcho === true) {
    throw new TypeError(`natsTransport(options): noEcho would hide the nodes that share a NATS connection from each other: leave it unset`);
  }
  const maxInstances = whole(options.maxInstances, 'maxInstances', Infinity, true);
  const discoveryInterval = whole(options.discoveryInterval, 'discoveryInterval', 2000, false);
  const openTimeout = whole(options.openTimeout, 'openTimeout', 5000, false);
  const nats = loadClient();
  const shared = new SharedConnection(nats, options);
  return {
    attach: (node) => new NatsSession(shared, node, { prefix, maxInstances, discoveryInterval, openTimeout }),
  };
}

function loadClient(): NatsModule {
  try {
    return require(CLIENT_PACKAGE) as NatsModule;
  } catch (error) {
    throw new IpcError(
      ErrorCode.TRANSPORT,
      `The NATS transport needs the NATS client: npm install ${CLIENT_PACKAGE} (${(error as Error).message.split('\n')[0]})`,
      { cause: error },
    );
  }
}

/** The options of ours, beside nats.js's connection options. */
const OWN_OPTIONS = new Set(['prefix', 'maxInstances', 'discoveryInterval', 'openTimeout']);

/** A whole number from 1 to 2^31-1 (a timer's range), or `Infinity` when `infinite`. @throws TypeError */
function whole(value: unknown, key: string, fallback: number, infinite: boolean): number {
  if (value === undefined) return fallback;
  if (infinite && value === Infinity) return value;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_TIMER_DELAY) {
    throw new TypeError(`natsTransport(options): options.${key} must be a whole number from 1 to ${MAX_TIMER_DELAY}${infinite ? ' or Infinity' : ''}, received ${describe(value)}`);
  }
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** A service name as a subject token. @throws TypeError */
function checkToken(name: string, what: string): string {
  if (!TOKEN.test(name)) {
    throw new TypeError(`${what} must be usable as a NATS subject token (no '.', '*', '>', whitespace or control characters), received ${JSON.stringify(name)}`);
  }
  return name;
}

/** A random subject token. */
const freshId = () => randomBytes(12).toString('hex');

/** Parses a small JSON object from a NATS message; null when it is not one. */
function readBody(msg: Msg): Record<string, unknown> | null {
  if (msg.data.length > 4096) return null;
  try {
    const body: unknown = JSON.parse(Buffer.from(msg.data).toString('utf8'));
    return body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const asJson = (body: unknown) => Buffer.from(JSON.stringify(body));

/** A nats.js failure as our error: `ERR_IPC_TRANSPORT`, saying what we were doing, the nats.js error as `cause`. */
function transportError(doing: string, error: unknown): IpcError {
  if (error instanceof IpcError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new IpcError(ErrorCode.TRANSPORT, `NATS: ${doing} failed: ${message}`, { cause: error });
}

/** What to do when a connection closes for good, per connection: see {@link whenClosed}. */
const closeWatchers = new WeakMap<NatsConnection, Set<(error: void | Error) => void>>();

/**
 * Calls `then` once `nc` closes for good; returns what stops that. One wait on `nc.closed()` per connection, not one
 * per transport: each wait is a callback that `nc` keeps until it closes, so a connection of the user's that lives on
 * kept every transport that ever used it (~1 KB each; a node per job on one long-lived connection grew for ever).
 */
function whenClosed(nc: NatsConnection, then: (error: void | Error) => void): () => void {
  const watchers = closeWatchers.get(nc) ?? watchClose(nc);
  watchers.add(then);
  return () => void watchers.delete(then);
}

/** The one wait on `nc.closed()` (a function of its own: a closure made in whenClosed would keep its first `then`). */
function watchClose(nc: NatsConnection): Set<(error: void | Error) => void> {
  const watchers = new Set<(error: void | Error) => void>();
  closeWatchers.set(nc, watchers);
  void nc.closed().then((error) => {
    closeWatchers.delete(nc);
    for (const watcher of [...watchers]) watcher(error);
  });
  return watchers;
}

/**
 * The NATS connection of one transport, shared by the nodes attached to it: opened on first use, closed when the
 * last of them closes (unless the user gave it). Tells every session when it is lost, regained, or replaced: a
 * connection we opened that closes for good (nats.js gave up reconnecting) is replaced by a new one, and the
 * sessions subscribe again; a connection the user gave that closes is the end of the transport (`ERR_IPC_TRANSPORT`).
 */
class SharedConnection {
  private connecting: Promise<NatsConnection> | null = null;
  /** `connecting`, once it resolved. */
  private connected: Promise<NatsConnection> | null = null;
  private readonly sessions = new Set<NatsSession>();
  /**
   * What stops following each connection attempt's connection (see watch), by attempt: a release stops its own
   * attempt's watch, never the next one's (one field for both stopped the watch a node starting at that moment
   * had just begun on the user's connection, and kept the closing one's for the connection's life).
   */
  private readonly unwatch = new Map<Promise<NatsConnection>, () => void>();
  private renewTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly nats: NatsModule,
    private readonly options: NatsTransportOptions,
  ) {}

  get owned(): boolean {
    return !('connection' in this.options);
  }

  /** Set once the connection the user gave is closed: it never comes back, the transport can never work again. */
  get failure(): IpcError | null {
    if (!('connection' in this.options) || !this.options.connection.isClosed()) return null;
    return new IpcError(ErrorCode.TRANSPORT, 'The NATS connection given to natsTransport is closed');
  }

  /** `session` uses the connection from now on (its first serve, search or link): kept open until it leaves. */
  join(session: NatsSession): void {
    this.sessions.add(session);
  }

  /** The connection (connecting on first use, and again after a failed attempt or a close for good). */
  get(): Promise<NatsConnection> {
    if (this.connecting) return this.connecting;
    const connecting: Promise<NatsConnection> = this.open().then(
      (nc) => {
        this.unwatch.set(connecting, this.watch(nc));
        if (this.connecting === connecting) this.connected = connecting;
        return nc;
      },
      (error: unknown) => {
        if (this.connecting === connecting) this.connecting = null;
        throw transportError('connecting', error);
      },
    );
    this.connecting = connecting;
    return connecting;
  }

  private async open(): Promise<NatsConnection> {
    let nc: NatsConnection;
    if ('connection' in this.options) {
      nc = this.options.connection;
      if (nc.isClosed()) throw new Error('the connection given as options.connection is closed');
    } else {
      const { prefix: _p, maxInstances: _m, discoveryInterval: _d, openTimeout: _o, ...connectOptions } = this.options;
      // Async traces cost ~40% of request throughput; reconnect forever unless told otherwise.
      nc = await this.nats.connect({ maxReconnectAttempts: -1, ...connectOptions, noAsyncTraces: true });
    }
    return nc;
  }

  /**
   * Follows the connection: a disconnect ends every link at once, a reconnect searches again, a close replaces it.
   * Returns what stops following it.
   */
  private watch(nc: NatsConnection): () => void {
    const status = nc.status() as AsyncIterable<{ type: string }> & { stop?(): void };
    const unwatch = whenClosed(nc, (error) => this.closedForGood(nc, error));
    void (async () => {
      for await (const event of status) {
        if (event.type === 'disconnect') for (const session of this.sessions) session.lost();
        else if (event.type === 'reconnect') for (const session of this.sessions) session.regained();
      }
    })().catch(() => undefined);
    return () => {
      unwatch();
      status.stop?.();
    };
  }

  /** Stops following the connection of the attempt `connecting`. */
  private stopWatching(connecting: Promise<NatsConnection>): void {
    this.unwatch.get(connecting)?.();
    this.unwatch.delete(connecting);
  }

  /** `nc` closed for good (not by us): links end; ours is replaced, the user's ends the transport. */
  private closedForGood(nc: NatsConnection, error: void | Error): void {
    const current = this.connected;
    if (!current || this.sessions.size === 0) return;
    void current.then((live) => {
      if (live !== nc || this.connected !== current) return;
      this.connecting = this.connected = null;
      this.stopWatching(current);
      for (const session of this.sessions) session.lost();
      const why = error ? `: ${error.message}` : '';
      if (!this.owned) {
        for (const session of this.sessions) session.failed(new IpcError(ErrorCode.TRANSPORT, `The NATS connection given to natsTransport closed${why}`, { cause: error ?? undefined }));
        return;
      }
      this.renew(0);
    });
  }

  /** Opens a new connection for the sessions, retrying with backoff (500 ms doubling, at most 10 s) until it works. */
  private renew(attempt: number): void {
    this.renewTimer = null;
    if (this.sessions.size === 0) return;
    this.get().then(
      () => {
        for (const session of this.sessions) session.renewed();
      },
      (failure: Error) => {
        for (const session of this.sessions) session.failed(failure);
        if (this.sessions.size > 0) this.renewTimer = setTimeout(() => this.renew(attempt + 1), Math.min(500 * 2 ** attempt, 10_000));
      },
    );
  }

  /**
   * A session closed: the last one closes the connection we opened (or lets go of the user's). A connection still
   * being opened is not waited for: it is closed as soon as it is up (or its attempt fails).
   */
  async leave(session: NatsSession): Promise<void> {
    // A session that never used the connection has nothing to let go of.
    if (!this.sessions.delete(session) || this.sessions.size > 0) return;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    this.renewTimer = null;
    if (!this.connecting) return;
    const connecting = this.connecting;
    const connected = this.connected === connecting;
    this.connecting = null;
    this.connected = null;
    const release = async (nc: NatsConnection) => {
      this.stopWatching(connecting);
      if (nc.isClosed()) return;
      if (this.owned) await nc.close();
      else await nc.flush().catch(() => undefined);
    };
    if (connected) return release(await connecting);
    void connecting.then(release).catch(() => undefined);
  }
}

interface SessionSettings {
  prefix: string;
  maxInstances: number;
  discoveryInterval: number;
  openTimeout: number;
}

/** One node's use of a NATS transport: its subscriptions, searches and links. */
class NatsSession implements TransportSession {
  readonly maxInstances: number;
  private readonly links = new Set<NatsLink>();
  private readonly subscriptions = new Set<Subscription>();
  private readonly discoveries = new Set<Discovery & { renewed(): void }>();
  /** What `serve` was asked, to subscribe again on a new connection. */
  private serving: { service: string; onLink: (link: Duplex) => void } | null = null;
  /** The subscriptions that make this node reachable (discover, open), while it serves. */
  private servingSubscriptions: Subscription[] = [];
  private closed = false;
  /** Between a NATS disconnect and the reconnect: links that end meanwhile repeat their FIN once it is back. */
  private down = false;
  /** Links that ended while the connection was down: their FIN may have been dropped. */
  private readonly finsOwed = new Set<NatsLink>();
  /** Link requests out (see open): close() waits for their answers, to tell those instances the link is off. */
  private readonly requests = new Set<Promise<Msg>>();

  constructor(
    private readonly shared: SharedConnection,
    private readonly node: TransportNode,
    private readonly settings: SessionSettings,
  ) {
    this.maxInstances = settings.maxInstances;
  }

  /**
   * The NATS connection, joining the nodes that use it on first use: a node that never serves nor connects holds
   * nothing (it kept the connection of a shared transport open after every other node closed: the process hung).
   */
  private connection(): Promise<NatsConnection> {
    // Closed: no connection may be opened for it (nobody would close it).
    if (this.closed) return Promise.reject(new ClosedError(`Node "${this.node.name}" is closed`));
    this.shared.join(this);
    return this.shared.get();
  }

  get failure(): Error | null {
    return this.shared.failure;
  }

  private subject(...tokens: string[]): string {
    return [this.settings.prefix, ...tokens].join('.');
  }

  /** An `'error'` event of the node, unless the session is closed. */
  private report(error: Error): void {
    if (!this.closed) this.node.report(error);
  }

  /**
   * Subscribes `subject`; a failure of the subscription (a permissions violation…) is reported; a throw of
   * `onMessage` too — never into nats.js, which would stop reading the connection.
   */
  private subscribe(nc: NatsConnection, subject: string, onMessage: (msg: Msg) => void): Subscription {
    const subscription = nc.subscribe(subject, {
      callback: (error, msg) => {
        if (this.closed) return;
        if (error) return this.report(transportError(`the subscription to ${subject}`, error));
        try {
          onMessage(msg);
        } catch (failure) {
          this.report(transportError(`handling a message on ${subject}`, failure));
        }
      },
    });
    this.subscriptions.add(subscription);
    return subscription;
  }

  serve(service: string, onLink: (link: Duplex) => void): Promise<string> {
    checkToken(service, 'serve(name): name');
    const serving = { service, onLink };
    this.serving = serving;
    return this.reachable(service, onLink).catch((error: unknown) => {
      // A serve that failed is forgotten: a new NATS connection must not make the node reachable behind its back.
      if (this.serving === serving) this.serving = null;
      // Closed meanwhile (NATS could not be reached before close()): no refusal to report after 'close'.
      if (this.closed) return '';
      throw error;
    });
  }

  private async reachable(service: string, onLink: (link: Duplex) => void): Promise<string> {
    const nc = await this.connection();
    if (this.closed) return '';
    const { instance } = this.node;
    const discover = this.subject('discover', service);
    const open = this.subject('open', instance);
    const mine: Subscription[] = [];
    // nats.js throws when the connection is closing or draining (a connection the user gave): say it our way.
    try {
      mine.push(
        this.subscribe(nc, discover, (msg) => {
          if (msg.reply) msg.respond(asJson({ instance }));
        }),
      );
      mine.push(this.subscribe(nc, open, (msg) => this.linkRequested(nc, msg, onLink)));
      await this.flushThroughReconnects(nc);
      // Closed meanwhile: close() unsubscribed them, that is no refusal.
      if (this.closed) return '';
      // The server refuses a subscription (permissions) before it answers the flush.
      if (mine.some((subscription) => subscription.isClosed())) {
        throw new IpcError(ErrorCode.TRANSPORT, `NATS refused the subscriptions of "${service}" (${discover}, ${open}): check the user's permissions`);
      }
      // Stopped serving meanwhile (close() began): not reachable after all.
      if (this.serving === null) {
        for (const subscription of mine) this.unsubscribe(subscription);
        return '';
      }
      this.servingSubscriptions = mine;
      nc.publish(this.subject('announce', service), asJson({ instance }));
    } catch (error) {
      if (this.closed) return '';
      // Not reachable: no subscription of this attempt may stay (one left would answer discovery for a phantom).
      for (const subscription of mine) this.unsubscribe(subscription);
      throw transportError(`serving "${service}"`, error);
    }
    return `nats:${discover}`;
  }

  /**
   * `nc.flush()`, asked again while NATS rejects it for a disconnect (`"connection disconnected"`): the
   * subscriptions survive a reconnect (nats.js sends them again), only the confirmation was lost — a serve() caught
   * by a disconnect failed for good. Gives up when the connection closes or drains, or this session closes.
   */
  private async flushThroughReconnects(nc: NatsConnection): Promise<void> {
    for (;;) {
      try {
        return await nc.flush();
      } catch (error) {
        if (this.closed || nc.isClosed() || nc.isDraining()) throw error;
      }
    }
  }

  /** A client asks for a link: a link reading a fresh subject, handed to the node; the answer names that subject. */
  private linkRequested(nc: NatsConnection, msg: Msg, onLink: (link: Duplex) => void): void {
    const to = readBody(msg)?.subject;
    const linkPrefix = `${this.settings.prefix}.link.`;
    if (!msg.reply || typeof to !== 'string' || !to.startsWith(linkPrefix) || !TOKEN.test(to.slice(linkPrefix.length))) {
      this.report(new IpcError(ErrorCode.PROTOCOL, `A malformed NATS link request reached "${this.node.name}": ignored`));
      return;
    }
    const link = this.link(nc);
    link.to = to;
    onLink(link);
    msg.respond(asJson({ subject: link.from }));
  }

  discover(service: string, found: (instance: string) => void): Discovery {
    checkToken(service, 'connectTo(name): name');
    const inbox = this.subject('found', freshId());
    let timer: NodeJS.Timeout | null = null;
    let stopped = false;
    const mine = new Set<Subscription>();
    const onAnswer = (msg: Msg) => {
      const instance = readBody(msg)?.instance;
      if (typeof instance === 'string' && TOKEN.test(instance) && instance !== this.node.instance && !stopped) found(instance);
    };
    const ask = (): Promise<Error | undefined> =>
      this.connection().then(
        async (nc) => {
          if (stopped || this.closed) return undefined;
          try {
            if (mine.size === 0) {
              mine.add(this.subscribe(nc, inbox, onAnswer));
              mine.add(this.subscribe(nc, this.subject('announce', service), onAnswer));
            }
            nc.publish(this.subject('discover', service), undefined, { reply: inbox });
          } catch (error) {
            // A connection closing or draining (one the user gave): a failed round, never a rejection.
            const failure = transportError(`asking who serves "${service}"`, error);
            if (!stopped) this.report(failure);
            return failure;
          }
          await nc.flush().catch(() => undefined);
          return undefined;
        },
        (error: Error) => {
          if (!stopped) this.report(error);
          return error;
        },
      );
    const discovery = {
      refresh: ask,
      stop: () => {
        stopped = true;
        if (timer) clearInterval(timer);
        for (const subscription of mine) this.unsubscribe(subscription);
        this.discoveries.delete(discovery);
      },
      /** A new connection: the old subscriptions went with the old one. */
      renewed: () => {
        mine.clear();
        void ask();
      },
    };
    this.discoveries.add(discovery);
    timer = setInterval(() => void ask(), this.settings.discoveryInterval);
    return discovery;
  }

  async open(service: string, instance: string): Promise<Duplex> {
    const nc = await this.connection();
    let link: NatsLink | undefined;
    // Until the node reads it, the link's 'error' (a NATS disconnect, a malformed message published on its subject
    // by anyone who saw the request) has no listener of the node's: emitted unheard, it crashed the process.
    let lostWith: Error | null = null;
    const onError = (error: Error) => (lostWith ??= error);
    try {
      link = this.link(nc);
      link.on('error', onError);
      const request = nc.request(this.subject('open', instance), asJson({ subject: link.from, name: this.node.name }), { timeout: this.settings.openTimeout });
      this.requests.add(request);
      const answer = await request.finally(() => this.requests.delete(request));
      const to = readBody(answer)?.subject;
      // One token after the prefix, as linkRequested checks of the other side: a wildcard (`ipc.link.*`) or a
      // subject of many tokens from a hostile instance would have us publish our frames wherever it chose.
      const linkPrefix = `${this.settings.prefix}.link.`;
      const valid = typeof to === 'string' && to.startsWith(linkPrefix) && TOKEN.test(to.slice(linkPrefix.length));
      // Destroyed while the request was out (a NATS disconnect, our close): a late answer must not hand it over, a
      // Connection over a stream already closed waits for a 'close' that never comes (node.close() hung). The
      // instance is told the link is off (it held its end until its handshakeTimeout).
      if (link.destroyed) {
        if (valid) link.finishLate(to);
        throw lostWith ?? new Error('the link was closed while it was being opened');
      }
      if (!valid) throw new Error('malformed answer');
      link.to = to;
      link.off('error', onError);
      return link;
    } catch (error) {
      link?.destroy();
      throw new ConnectError(`Could not open a link to an instance of "${service}" (${instance}): ${(error as Error).message}`, { cause: error });
    }
  }

  /** A link reading a fresh subject of ours. */
  private link(nc: NatsConnection): NatsLink {
    const link = new NatsLink(nc, this.subject('link', freshId()), (gone) => {
      this.links.delete(gone);
      if (this.down) this.finsOwed.add(gone);
    });
    this.links.add(link);
    return link;
  }

  /** The NATS connection was lost: every link ends now (what was in flight may be lost). */
  lost(): void {
    this.down = true;
    for (const link of this.links) link.destroy(new PeerDisconnectedError(`"${this.node.name}" lost its NATS connection`));
  }

  /** The NATS connection is back: search again at once. */
  regained(): void {
    this.down = false;
    for (const link of this.finsOwed) link.repeatFin();
    this.finsOwed.clear();
    for (const discovery of this.discoveries) void discovery.refresh();
  }

  /** A new NATS connection replaced one closed for good: subscribe again, search again. */
  renewed(): void {
    this.down = false;
    this.finsOwed.clear();
    if (this.closed) return;
    this.subscriptions.clear();
    if (this.serving) {
      const { service, onLink } = this.serving;
      this.reachable(service, onLink).catch((error: Error) => this.report(error));
    }
    for (const discovery of this.discoveries) discovery.renewed();
  }

  /**
   * Not reachable any more (the node closes): no discovery answer, no new link — as a socket server stops listening
   * first, before a `close({ drain })` drains. The links already up are the node's to end.
   */
  stopServing(): void {
    this.serving = null;
    for (const subscription of this.servingSubscriptions.splice(0)) this.unsubscribe(subscription);
  }

  /** The transport cannot go on (the user's connection closed): say so. */
  failed(error: Error): void {
    this.report(error);
  }

  private unsubscribe(subscription: Subscription): void {
    this.subscriptions.delete(subscription);
    try {
      if (!subscription.isClosed()) subscription.unsubscribe();
    } catch {
      // the NATS connection is closed: the subscription went with it
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.finsOwed.clear();
    for (const discovery of [...this.discoveries]) discovery.stop();
    for (const subscription of [...this.subscriptions]) this.unsubscribe(subscription);
    for (const link of this.links) link.destroy();
    // An instance answers a link request within a round trip: a connection we opened, closed before, lost the answer,
    // and the instance held its end of the link until its handshakeTimeout. Waited for at most CLOSE_GRACE (an
    // instance that never answers must not hold close() for openTimeout); a connection of the user's stays open, and
    // the answer is taken care of when it comes (see open).
    if (this.requests.size > 0 && this.shared.owned) {
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.min(this.settings.openTimeout, CLOSE_GRACE))));
      await Promise.race([Promise.allSettled([...this.requests]), grace]);
      clearTimeout(timer);
    }
    await this.shared.leave(this);
  }
}
