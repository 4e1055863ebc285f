import { Duplex } from 'node:stream';
import { firstValueFrom } from 'rxjs';
import { createLinkPair, MAX_NAME_LENGTH, Node, type NodeOptions } from '../../src';
import { closeAll, node } from '../helpers/net';

afterEach(closeAll);

/**
 * Every public call given wrong types and out-of-range values: each must end in a TypeError whose message names
 * the argument and what is allowed — thrown by constructors and synchronous methods, a rejection (never a
 * synchronous throw) from Promise-returning ones, an error notification from request$. Never a hang, never an
 * internal error of node:net or a "Cannot read properties of null".
 */

const tooLong = 'n'.repeat(MAX_NAME_LENGTH + 1);

describe('new Node(name, options)', () => {
  const bad: [string, unknown, RegExp][] = [
    ['no name', undefined, /name must be a non-empty string of at most 256 characters, received undefined/],
    ['a null name', null, /name must be a non-empty string .* received null/],
    ['an empty name', '', /name must be a non-empty string .* received ""/],
    ['a number as name', 0, /name must be a non-empty string .* received 0/],
    ['an object as name', {}, /name must be a non-empty string .* received an object/],
    [`a name longer than ${MAX_NAME_LENGTH}`, tooLong, /name must be a non-empty string of at most 256 characters, received a string of length 257/],
    ['a name with a line feed', 'a\nb', /name must be free of control characters \(line feeds, tabs…\), received "a\\nb"/],
    ['a name with a tab', 'a\tb', /name must be free of control characters/],
    ['a name with DEL', 'a\u007f', /name must be free of control characters/],
    ['a name with a lone surrogate (review)', 'b\ud800', /name must be well-formed UTF-16 \(no lone surrogate\), received "b\\ud800"/],
    ['a name with a lone low surrogate (review)', '\udc00b', /no lone surrogate/],
  ];
  it.each(bad)('refuses %s', (_, name, message) => {
    expect(() => new Node(name as string)).toThrow(TypeError);
    expect(() => new Node(name as string)).toThrow(message);
  });

  it(`accepts a name of ${MAX_NAME_LENGTH} characters, which connects`, async () => {
    const long = 'é'.repeat(MAX_NAME_LENGTH);
    const server = node(long);
    const client = node('c'.repeat(MAX_NAME_LENGTH));
    const [a, b] = createLinkPair();
    server.acceptVia(a);
    await expect(client.connectVia(long, b)).resolves.toMatchObject({ name: long });
  });

  it.each([null, 5, 'fast', [], true])('refuses options = %p', (options) => {
    expect(() => new Node('a', options as NodeOptions)).toThrow(TypeError);
    expect(() => new Node('a', options as NodeOptions)).toThrow(/options must be an object, received/);
  });

  const options: [keyof NodeOptions, unknown, RegExp][] = [
    ['maxRetries', -1, /options\.maxRetries must be an integer from 0 to Infinity, received -1/],
    ['maxRetries', NaN, /options\.maxRetries must be an integer from 0 to Infinity, received NaN/],
    ['maxRetries', 1.5, /options\.maxRetries must be an integer/],
    ['maxRetries', '3', /options\.maxRetries must be an integer.*received "3"/],
    ['retryTime', -1, /options\.retryTime must be a number of ms from 0 to/],
    ['retryTime', NaN, /options\.retryTime must be a number of ms/],
    ['retryTime', Infinity, /options\.retryTime must be .*\(finite\), received Infinity/],
    ['maxRetryTime', -5, /options\.maxRetryTime must be a number of ms from 0 to Infinity/],
    ['maxRetryTime', null, /options\.maxRetryTime must be .* received null/],
    ['handshakeTimeout', 0, /options\.handshakeTimeout must be a number of ms from 1 to Infinity \(none\), received 0/],
    ['handshakeTimeout', NaN, /options\.handshakeTimeout must be/],
    ['maxFrameSize', 0, /options\.maxFrameSize must be an integer from 1024 to 4294967295, received 0/],
    ['maxFrameSize', 1023, /options\.maxFrameSize must be an integer from 1024 to 4294967295, received 1023/],
    ['maxFrameSize', 1.5, /options\.maxFrameSize must be an integer/],
    ['maxFrameSize', 2 ** 32, /options\.maxFrameSize must be an integer from 1024 to 4294967295/],
    ['maxFrameSize', Infinity, /options\.maxFrameSize must be an integer/],
    ['heartbeatInterval', -1, /options\.heartbeatInterval must be a number of ms from 0 to Infinity/],
    ['heartbeatInterval', NaN, /options\.heartbeatInterval must be/],
    ['heartbeatInterval', '5000', /options\.heartbeatInterval must be .* received "5000"/],
    ['streamWindow', 0, /options\.streamWindow must be an integer from 1 to 4294967295, received 0/],
    ['streamWindow', 1.5, /options\.streamWindow must be an integer/],
    ['streamWindow', 2 ** 32, /options\.streamWindow must be an integer from 1 to 4294967295/],
    ['streamBuffer', -1, /options\.streamBuffer must be an integer from 0 to Infinity/],
    ['streamBuffer', 1.5, /options\.streamBuffer must be an integer/],
    ['requestTimeout', -1, /options\.requestTimeout must be a number of ms from 0 to Infinity/],
    ['requestTimeout', NaN, /options\.requestTimeout must be/],
    ['maxPendingRequests', 0, /options\.maxPendingRequests must be an integer from 1 to Infinity/],
    ['maxPendingRequests', 1.5, /options\.maxPendingRequests must be an integer/],
    ['maxHandshaking', 0, /options\.maxHandshaking must be an integer from 1 to Infinity, received 0/],
    ['maxHandshaking', -1, /options\.maxHandshaking must be an integer from 1 to Infinity/],
    ['maxHandshaking', 1.5, /options\.maxHandshaking must be an integer/],
    ['maxHandshaking', NaN, /options\.maxHandshaking must be an integer/],
    ['maxHandshaking', '8', /options\.maxHandshaking must be an integer .* received "8"/],
    ['maxWriteBuffer', -1, /options\.maxWriteBuffer must be an integer from 0 to Infinity/],
    ['socketMode', 'x', /options\.socketMode must be an integer from 0 to 4095, received "x"/],
    ['socketMode', 0o10000, /options\.socketMode must be an integer from 0 to 4095/],
    ['socketMode', -1, /options\.socketMode must be an integer/],
    ['tls', 5, /options\.tls must be an object, received 5/],
    ['tls', null, /options\.tls must be an object, received null/],
    ['codec', null, /options\.codec must be an object with encode and decode methods, received null/],
    ['codec', {}, /options\.codec must be an object with encode and decode methods/],
    ['scheduler', 5, /options\.scheduler must be an RxJS scheduler, received 5/],
    ['scheduler', {}, /options\.scheduler must be an RxJS scheduler/],
    ['auth', null, /options\.auth must be an object, received null/],
    ['auth', {}, /options\.auth\.secret must be a non-empty string or Buffer, received undefined/],
    ['auth', { secret: '' }, /options\.auth\.secret must be a non-empty string or Buffer/],
    ['exposeErrorStack', 'yes', /options\.exposeErrorStack must be true or false, received "yes"/],
  ];
  it.each(options)('refuses %s: %p', (key, value, message) => {
    expect(() => new Node('a', { [key]: value })).toThrow(TypeError);
    expect(() => new Node('a', { [key]: value })).toThrow(message);
  });

  it.each<[keyof NodeOptions, unknown]>([
    ['maxRetries', Infinity],
    ['handshakeTimeout', Infinity],
    ['heartbeatInterval', 0],
    ['heartbeatInterval', Infinity],
    ['requestTimeout', Infinity],
    ['requestTimeout', 0],
    ['maxRetryTime', Infinity],
    ['maxWriteBuffer', Infinity],
    ['maxPendingRequests', Infinity],
    ['maxHandshaking', Infinity],
    ['maxHandshaking', 2 ** 31],
    ['streamBuffer', 0],
    ['socketMode', 0o600],
  ])('accepts %s: %p', (key, value) => {
    expect(() => node('a', { [key]: value })).not.toThrow();
  });
});

/** A node connected to 'server' over an in-memory link, so target-related calls get past "not connected". */
async function connected() {
  const server = node('server');
  const client = node('client');
  server.on('message', (m) => m.reply('ok'));
  const [a, b] = createLinkPair();
  server.acceptVia(a);
  await client.connectVia('server', b);
  return client;
}

type Call = (n: Node) => unknown;

describe('Promise-returning methods reject (never throw) with a TypeError naming the argument', () => {
  const destroyed = new Duplex({ read() {}, write(_c, _e, cb) { cb(); } });
  destroyed.destroy();
  const cases: [string, Call, RegExp][] = [
    ['connectTo()', (n) => n.connectTo(undefined as never), /connectTo\(name\): name must be a non-empty string .* received undefined/],
    ["connectTo('')", (n) => n.connectTo('', 1), /connectTo\(name\): name must be a non-empty string/],
    ['connectTo(5)', (n) => n.connectTo(5 as never, 1), /connectTo\(name\): name must be .* received 5/],
    ['connectTo(too long name)', (n) => n.connectTo(tooLong, 1), /at most 256 characters, received a string of length 257/],
    ["connectTo('b\\nc')", (n) => n.connectTo('b\nc', 1), /connectTo\(name\): name must be free of control characters/],
    ["connectTo('peer')", (n) => n.connectTo('peer'), /connectTo needs a port \(1 to 65535\) \[and host\], a Unix socket path or an options object .* received nothing/],
    ["connectTo('peer', 0)", (n) => n.connectTo('peer', 0), /connectTo: port must be an integer from 1 to 65535, received 0/],
    ["connectTo('peer', -1)", (n) => n.connectTo('peer', -1), /connectTo: port must be an integer from 1 to 65535, received -1/],
    ["connectTo('peer', 65536)", (n) => n.connectTo('peer', 65536), /port must be an integer from 1 to 65535, received 65536/],
    ["connectTo('peer', 1.5)", (n) => n.connectTo('peer', 1.5), /port must be an integer from 1 to 65535, received 1.5/],
    ["connectTo('peer', NaN)", (n) => n.connectTo('peer', NaN), /port must be an integer from 1 to 65535, received NaN/],
    ["connectTo('peer', Infinity)", (n) => n.connectTo('peer', Infinity), /port must be .* received Infinity/],
    ["connectTo('peer', 2 ** 31)", (n) => n.connectTo('peer', 2 ** 31), /port must be .* received 2147483648/],
    ["connectTo('peer', '70000')", (n) => n.connectTo('peer', '70000'), /port must be .* received "70000"/],
    ["connectTo('peer', '')", (n) => n.connectTo('peer', ''), /connectTo: path must be a non-empty Unix socket path, received ""/],
    ["connectTo('peer', null)", (n) => n.connectTo('peer', null), /connectTo needs a port .* received null/],
    ["connectTo('peer', {})", (n) => n.connectTo('peer', {}), /connectTo: options\.port must be an integer from 1 to 65535 \(or give options\.path\), received undefined/],
    ["connectTo('peer', { port: 70000 })", (n) => n.connectTo('peer', { port: 70000 }), /options\.port must be an integer from 1 to 65535/],
    ["connectTo('peer', { path: '' })", (n) => n.connectTo('peer', { path: '' }), /connectTo: options\.path must be a non-empty Unix socket path/],
    ["connectTo('peer', 80, 5)", (n) => n.connectTo('peer', 80, 5), /connectTo: host must be a non-empty string, received 5/],
    ['connectVia()', (n) => n.connectVia(undefined as never, createLinkPair()[0]), /connectVia\(name\): name must be/],
    ["connectVia('p')", (n) => n.connectVia('p', undefined as never), /connectVia\(name, socket\): socket must be a connected net\.Socket or stream\.Duplex, received undefined/],
    ["connectVia('p', null)", (n) => n.connectVia('p', null as never), /socket must be a connected net\.Socket or stream\.Duplex, received null/],
    ["connectVia('p', {})", (n) => n.connectVia('p', {} as never), /socket must be a connected net\.Socket or stream\.Duplex, received an object/],
    ["connectVia('p', destroyed)", (n) => n.connectVia('p', destroyed), /connectVia\(name, socket\): socket is already destroyed/],
    ['sendTo(undefined)', (n) => n.sendTo(undefined as never, 'x'), /sendTo\(target\): target must be a peer name or a NodeSocket, received undefined/],
    ["sendTo('')", (n) => n.sendTo('', 'x'), /target must be a peer name or a NodeSocket, received ""/],
    ['sendTo(5)', (n) => n.sendTo(5 as never, 'x'), /target must be a peer name or a NodeSocket, received 5/],
    ['sendTo({})', (n) => n.sendTo({} as never, 'x'), /target must be a peer name or a NodeSocket, received an object/],
    ['sendTo(…, null)', (n) => n.sendTo('server', 'x', null as never), /sendTo\(target, data, options\): options must be an object, received null/],
    ['sendTo(…, { timeout: -1 })', (n) => n.sendTo('server', 'x', { timeout: -1 }), /options\.timeout must be a number of ms from 0 to Infinity \(none\), received -1/],
    ['sendTo(…, { timeout: NaN })', (n) => n.sendTo('server', 'x', { timeout: NaN }), /options\.timeout must be .* received NaN/],
    ["sendTo(…, { timeout: '1' })", (n) => n.sendTo('server', 'x', { timeout: '1' as never }), /options\.timeout must be .* received "1"/],
    ["sendTo(…, { receptive: 'no' })", (n) => n.sendTo('server', 'x', { receptive: 'no' as never }), /options\.receptive must be true or false, received "no"/],
    ['broadcast(x, null)', (n) => n.broadcast('x', null as never), /broadcast\(data, options\): options must be an object, received null/],
    ["broadcast(x, { filter: 'str' })", (n) => n.broadcast('x', { filter: 'str' as never }), /broadcast\(data, options\): options\.filter must be a RegExp, received "str"/],
    ['broadcast(x, { timeout: -1 })', (n) => n.broadcast('x', { timeout: -1 }), /options\.timeout must be a number of ms/],
    ['pingTo()', (n) => n.pingTo(undefined as never), /pingTo\(target\): target must be a peer name or a NodeSocket/],
    ['pingTo(…, null)', (n) => n.pingTo('server', null as never), /pingTo\(target, options\): options must be an object, received null/],
    ['pingTo(…, { timeout: NaN })', (n) => n.pingTo('server', { timeout: NaN }), /pingTo\(target, options\): options\.timeout must be .* received NaN/],
    ['disconnectFrom()', (n) => n.disconnectFrom(undefined as never), /disconnectFrom\(name\): name must be a string, received undefined/],
    ['disconnectFrom(5)', (n) => n.disconnectFrom(5 as never), /disconnectFrom\(name\): name must be a string, received 5/],
    ['close(null)', (n) => n.close(null as never), /close\(options\): options must be an object, received null/],
    ['close({ drain: -1 })', (n) => n.close({ drain: -1 }), /close\(options\): options\.drain must be a number of ms from 0 to Infinity/],
    ['close({ drain: NaN })', (n) => n.close({ drain: NaN }), /options\.drain must be .* received NaN/],
    ["close({ reconnect: 'no' })", (n) => n.close({ reconnect: 'no' as never }), /close\(options\): options\.reconnect must be true or false, received "no"/],
  ];
  it.each(cases)('%s', async (_, call, message) => {
    const n = await connected();
    let result: unknown;
    expect(() => (result = call(n))).not.toThrow();
    expect(result).toBeInstanceOf(Promise);
    const error = await (result as Promise<unknown>).then(
      () => new Error('resolved'),
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(message);
    // A refused connectTo/connectVia leaves no trace: the name is free, and the node still works.
    expect(n.get('peer')).toBeUndefined();
    expect(n.get('p')).toBeUndefined();
    await expect(n.sendTo('server', 'still there')).resolves.toBe('ok');
  });
});

describe('request$ errors (on subscribe) with a TypeError naming the option', () => {
  const cases: [string, Call, RegExp][] = [
    ['no target', (n) => n.request$(undefined as never, 'x'), /request\$\(target\): target must be a peer name or a NodeSocket, received undefined/],
    ['options null', (n) => n.request$('server', 'x', null as never), /request\$\(target, data, options\): options must be an object, received null/],
    ['window 0 (would stall until the timeout)', (n) => n.request$('server', 'x', { window: 0 }), /options\.window must be an integer from 1 to 4294967295, received 0/],
    ['window NaN', (n) => n.request$('server', 'x', { window: NaN }), /options\.window must be an integer from 1 to 4294967295, received NaN/],
    ['window -3 (was ERR_OUT_OF_RANGE)', (n) => n.request$('server', 'x', { window: -3 }), /options\.window must be an integer .* received -3/],
    ['window 1.5', (n) => n.request$('server', 'x', { window: 1.5 }), /options\.window must be an integer .* received 1.5/],
    ['window 2^32', (n) => n.request$('server', 'x', { window: 2 ** 32 }), /options\.window must be an integer .* received 4294967296/],
    ['idleTimeout -1', (n) => n.request$('server', 'x', { idleTimeout: -1 }), /options\.idleTimeout must be a number of ms from 0 to Infinity \(none\), received -1/],
    ["idleTimeout 'x'", (n) => n.request$('server', 'x', { idleTimeout: 'x' as never }), /options\.idleTimeout must be .* received "x"/],
    ['timeout NaN', (n) => n.request$('server', 'x', { timeout: NaN }), /options\.timeout must be .* received NaN/],
  ];
  it.each(cases)('%s', async (_, call, message) => {
    const n = await connected();
    const error = await firstValueFrom(call(n) as ReturnType<Node['request$']>, { defaultValue: 'completed' }).then(
      () => new Error('no error'),
      (e: Error) => e,
    );
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(message);
  });
});

describe('synchronous methods throw a TypeError naming the argument', () => {
  const cases: [string, Call, RegExp][] = [
    ['serve()', (n) => n.serve(undefined as never, 0), /serve\(name\): name must be a string \(a label\), received undefined/],
    ["serve('s', -1)", (n) => n.serve('s', -1), /serve: port must be an integer from 0 \(any free port\) to 65535, received -1/],
    ["serve('s', 65536)", (n) => n.serve('s', 65536), /serve: port must be .* received 65536/],
    ["serve('s', NaN)", (n) => n.serve('s', NaN), /serve: port must be .* received NaN/],
    ["serve('s', '')", (n) => n.serve('s', ''), /serve: path must be a non-empty Unix socket path/],
    ["serve('s', null)", (n) => n.serve('s', null), /serve must be a port, a Unix socket path or a listen options object, received null/],
    ["serve('s', { port: 1.5 })", (n) => n.serve('s', { port: 1.5 }), /serve: options\.port must be an integer from 0/],
    ['acceptVia()', (n) => n.acceptVia(undefined as never), /acceptVia\(socket\): socket must be a connected net\.Socket or stream\.Duplex, received undefined/],
    ['acceptVia({})', (n) => n.acceptVia({} as never), /acceptVia\(socket\): socket must be a connected net\.Socket or stream\.Duplex, received an object/],
    ['get()', (n) => n.get(undefined as never), /get\(name\): name must be a string, received undefined/],
    ['get(5)', (n) => n.get(5 as never), /get\(name\): name must be a string, received 5/],
  ];
  it.each(cases)('%s', (_, call, message) => {
    const n = node('a');
    expect(() => call(n)).toThrow(TypeError);
    expect(() => call(n)).toThrow(message);
    expect(n.server).toBeNull();
  });
});

describe('names: what stays allowed (review)', () => {
  it.each([['an emoji (a surrogate pair)', 'worker-\u{1F680}'], ['U+2028 (not a line feed to the HMAC text)', 'a\u2028b'], ['U+FFFD itself', 'b\uFFFD']])('takes %s', (_, name) => {
    expect(node(name).name).toBe(name);
  });
});
